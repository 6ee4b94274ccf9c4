/*
 * serv_iterative.c -- an echo server that forgot the fork: it accepts a
 * client, echoes its lines until it closes, and only then accepts the next.
 *
 * Mirrors:  tcpserv01 (UNP 5.2) without fork(): the iterative server of the
 *           book's daytime example (1.5, 4.6) given the echo service.
 * Usage:    serv_iterative <port>
 * Verdict:  WRONG as an echo server for more than one client at a time.
 * The bug:  while one client is connected every other waits in the listen
 *           queue: its connection is ESTABLISHED (the kernel completed the
 *           handshake) but no process owns it and its lines are ACKed by the
 *           kernel, never echoed (UNP 4.5-4.8: a server that is not
 *           concurrent).
 * Caught by: concurrent-server; keepalive-crash and heartbeat-pause, whose
 *           second client it never accepts.
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
#define LISTENQ 1024
#define SA struct sockaddr

static void err_sys(const char *msg)
{
    int errno_save = errno;
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", msg, strerror(errno_save));
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

static void str_echo(int sockfd)
{
    ssize_t n;
    char buf[MAXLINE];

again:
    while ((n = read(sockfd, buf, MAXLINE)) > 0)
        if (writen(sockfd, buf, n) < 0)
            return;                     /* the client is gone: next one */
    if (n < 0 && errno == EINTR)
        goto again;
    /* EOF or an error: done with this client */
}

int main(int argc, char **argv)
{
    int listenfd, connfd, on = 1;
    socklen_t clilen;
    struct sockaddr_in cliaddr, servaddr;

    if (argc != 2) {
        fprintf(stderr, "usage: serv_iterative <port>\n");
        exit(1);
    }
    if ((listenfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        err_sys("socket error");
    if (setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
        err_sys("setsockopt error");
    memset(&servaddr, 0, sizeof(servaddr));
    servaddr.sin_family = AF_INET;
    servaddr.sin_addr.s_addr = htonl(INADDR_ANY);
    servaddr.sin_port = htons(atoi(argv[1]));
    if (bind(listenfd, (SA *) &servaddr, sizeof(servaddr)) < 0)
        err_sys("bind error");
    if (listen(listenfd, LISTENQ) < 0)
        err_sys("listen error");

    for (;;) {
        clilen = sizeof(cliaddr);
        if ((connfd = accept(listenfd, (SA *) &cliaddr, &clilen)) < 0) {
            if (errno == EINTR)
                continue;
            err_sys("accept error");
        }
        str_echo(connfd);               /* one client at a time */
        close(connfd);
    }
}
