/*
 * cli_says_reset.c -- an echo client whose author "knew" what goes wrong
 * with a server: every failure of the connection is reported as "Connection
 * reset by peer", whatever errno says.
 *
 * Mirrors:  tcpcli01 + str_cli (UNP 5.4-5.5), with err_sys replaced by a
 *           hard-coded message (the author only ever saw 5.13's RST).
 * Usage:    cli_says_reset <IPaddress> <port>   (lines on stdin)
 * Verdict:  WRONG.
 * The bug:  the message ignores errno: after a crash of the server host
 *           (UNP 5.14) readline fails with ETIMEDOUT, yet it says
 *           "readline error: Connection reset by peer", so the user is told
 *           the server rebooted (5.15) when it is in fact unreachable.
 * Caught by: server-host-crash (the client reports ECONNRESET where the
 *           book's client gets ETIMEDOUT); server-host-reboot passes it
 *           (there the message happens to be true).
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

static void err_reset(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "%s: Connection reset by peer\n", msg);   /* what else could it be */
    exit(1);
}

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
    ssize_t n;

    if (argc != 3) {
        fprintf(stderr, "usage: cli_says_reset <IPaddress> <port>\n");
        exit(1);
    }
    if ((sockfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        err_reset("socket error");
    memset(&servaddr, 0, sizeof(servaddr));
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &servaddr.sin_addr);
    if (connect(sockfd, (SA *) &servaddr, sizeof(servaddr)) < 0)
        err_reset("connect error");

    while (fgets(sendline, MAXLINE, stdin) != NULL) {
        if (writen(sockfd, sendline, strlen(sendline)) < 0)
            err_reset("writen error");
        if ((n = readline(sockfd, recvline, MAXLINE)) <= 0)
            err_reset("readline error");
        fputs(recvline, stdout);
    }
    exit(0);
}
