/*
 * cli_gives_up.c -- an echo client that will not wait: it sets a one-second
 * receive timeout (SO_RCVTIMEO) on its socket and, when the echo is late,
 * declares the server dead and quits.
 *
 * Mirrors:  tcpcli01 + str_cli (UNP 5.4-5.5) with the receive timeout of
 *           UNP 14.2 (SO_RCVTIMEO, there for a UDP client) applied to TCP.
 * Usage:    cli_gives_up <IPaddress> <port>   (lines on stdin)
 * Verdict:  WRONG.
 * The bug:  TCP is reliable: a line sent while the network is cut is
 *           retransmitted until the link comes back (or until TCP itself
 *           gives up, minutes later, with ETIMEDOUT, UNP 5.14). A one-second
 *           timeout takes a delay for a failure: after a short partition it
 *           quits with "str_cli: server not responding", although the echo
 *           was on its way, and the connection is thrown away.
 * Caught by: partition-heal (the client must see only a delay: the echo,
 *           no error, still running).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#define MAXLINE 4096
#define SA struct sockaddr

static void err_sys(const char *msg)
{
    int errno_save = errno;
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", msg, strerror(errno_save));
    exit(1);
}

static void err_quit(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "%s\n", msg);
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
    struct timeval tv;
    char sendline[MAXLINE], recvline[MAXLINE];
    ssize_t n;

    if (argc != 3)
        err_quit("usage: cli_gives_up <IPaddress> <port>");
    if ((sockfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        err_sys("socket error");
    memset(&servaddr, 0, sizeof(servaddr));
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &servaddr.sin_addr) <= 0)
        err_quit("inet_pton error: not an IPv4 address");
    if (connect(sockfd, (SA *) &servaddr, sizeof(servaddr)) < 0)
        err_sys("connect error");

    tv.tv_sec = 1;                      /* a server that takes longer is dead */
    tv.tv_usec = 0;
    if (setsockopt(sockfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        err_sys("setsockopt SO_RCVTIMEO error");

    while (fgets(sendline, MAXLINE, stdin) != NULL) {
        if (writen(sockfd, sendline, strlen(sendline)) < 0)
            err_sys("writen error");
        if ((n = readline(sockfd, recvline, MAXLINE)) < 0) {
            if (errno == EWOULDBLOCK)
                err_quit("str_cli: server not responding");
            err_sys("readline error");
        }
        if (n == 0)
            err_quit("str_cli: server terminated prematurely");
        fputs(recvline, stdout);
    }
    exit(0);
}
