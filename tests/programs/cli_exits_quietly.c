/*
 * cli_exits_quietly.c -- an echo client that says nothing when the
 * connection fails: it just exits with status 1, as a shell script would
 * want, and leaves the user to guess why.
 *
 * Mirrors:  tcpcli01 + str_cli (UNP 5.4-5.5), with err_sys / err_quit
 *           replaced by exit(1) (no message, but a failure status).
 * Usage:    cli_exits_quietly <IPaddress> <port>   (lines on stdin)
 * Verdict:  right as far as a program can be judged without its words: it
 *           notices every failure, and the moment it exits tells which one
 *           (right after the server's RST: ECONNRESET; after its TCP gave up
 *           retransmitting: ETIMEDOUT; after the server's FIN: EOF).
 * Used by:  server-host-crash and server-host-reboot judge it by timing:
 *           ETIMEDOUT in the crash, ECONNRESET in the reboot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define MAXLINE 4096
#define SA struct sockaddr

static ssize_t writen(int fd, const void *vptr, size_t n)
{
    size_t nleft = n;
    ssize_t nwritten;
    const char *ptr = vptr;

    while (nleft > 0) {
        if ((nwritten = write(fd, ptr, nleft)) <= 0) {
            if (nwritten < 0 && errno == EINTR)
                nwritten = 0;
            else
                return -1;
        }
        nleft -= nwritten;
        ptr += nwritten;
    }
    return n;
}

static ssize_t readline(int fd, char *buf, size_t maxlen)
{
    size_t n = 0;
    ssize_t rc;
    char c;

    while (n + 1 < maxlen) {
        if ((rc = read(fd, &c, 1)) == 1) {
            buf[n++] = c;
            if (c == '\n')
                break;
        } else if (rc == 0) {
            break;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    buf[n] = 0;
    return n;
}

int main(int argc, char **argv)
{
    int sockfd;
    struct sockaddr_in servaddr;
    char sendline[MAXLINE], recvline[MAXLINE];

    if (argc != 3)
        exit(2);
    if ((sockfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        exit(1);
    memset(&servaddr, 0, sizeof(servaddr));
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &servaddr.sin_addr);
    if (connect(sockfd, (SA *) &servaddr, sizeof(servaddr)) < 0)
        exit(1);

    while (fgets(sendline, MAXLINE, stdin) != NULL) {
        if (writen(sockfd, sendline, strlen(sendline)) < 0)
            exit(1);
        if (readline(sockfd, recvline, MAXLINE) <= 0)
            exit(1);
        fputs(recvline, stdout);
    }
    exit(0);
}
