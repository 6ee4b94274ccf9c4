/*
 * serv_select.c -- a single-process echo server: select() over the listening
 * socket and every connected client.
 *
 * Mirrors:  tcpservselect01 (UNP 6.8, "TCP Echo Server (Revisited)"): the
 *           client[FD_SETSIZE] array, allset/rset, maxfd and maxi. Unlike
 *           the book's listing, whose Read()/Writen() wrappers exit on any
 *           error, a read or write error closes that one client (and SIGPIPE
 *           is ignored), so one client's RST cannot stop the others' server.
 * Usage:    serv_select <port>
 * Verdict:  RIGHT as an echo server; NOT fork-per-client: one process serves
 *           every connection, it has no children, so it never leaves a zombie
 *           and never sees SIGCHLD.
 * Caught by: concurrent-server (4.8) must say "one process serves every
 *           connection: not fork-per-client". The zombie, SIGCHLD and EINTR
 *           scenarios have no child to judge: they must say so (not judged),
 *           not pass it for reaping it never does. In server-process-killed
 *           the process that owns the client's connection is the whole
 *           server: the verdict must say so, and the run must not crash.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
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
                nwritten = 0;           /* and call write() again */
            else
                return -1;
        }
        nleft -= nwritten;
        ptr += nwritten;
    }
    return n;
}

int main(int argc, char **argv)
{
    int i, maxi, maxfd, listenfd, connfd, sockfd, on = 1;
    int nready, client[FD_SETSIZE];
    ssize_t n;
    fd_set rset, allset;
    char buf[MAXLINE];
    socklen_t clilen;
    struct sockaddr_in cliaddr, servaddr;

    if (argc != 2)
        err_quit("usage: serv_select <port>");

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
    signal(SIGPIPE, SIG_IGN);           /* a write to a reset client: EPIPE, not death */

    maxfd = listenfd;                   /* initialize */
    maxi = -1;                          /* index into client[] array */
    for (i = 0; i < FD_SETSIZE; i++)
        client[i] = -1;                 /* -1 indicates available entry */
    FD_ZERO(&allset);
    FD_SET(listenfd, &allset);

    for (;;) {
        rset = allset;                  /* structure assignment */
        if ((nready = select(maxfd + 1, &rset, NULL, NULL, NULL)) < 0) {
            if (errno == EINTR)
                continue;
            err_sys("select error");
        }

        if (FD_ISSET(listenfd, &rset)) {        /* new client connection */
            clilen = sizeof(cliaddr);
            if ((connfd = accept(listenfd, (SA *) &cliaddr, &clilen)) < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                err_sys("accept error");
            }

            for (i = 0; i < FD_SETSIZE; i++)
                if (client[i] < 0) {
                    client[i] = connfd; /* save descriptor */
                    break;
                }
            if (i == FD_SETSIZE)
                err_quit("too many clients");

            FD_SET(connfd, &allset);    /* add new descriptor to set */
            if (connfd > maxfd)
                maxfd = connfd;         /* for select */
            if (i > maxi)
                maxi = i;               /* max index in client[] array */

            if (--nready <= 0)
                continue;               /* no more readable descriptors */
        }

        for (i = 0; i <= maxi; i++) {   /* check all clients for data */
            if ((sockfd = client[i]) < 0)
                continue;
            if (FD_ISSET(sockfd, &rset)) {
                n = read(sockfd, buf, MAXLINE);
                if (n < 0 && errno == EINTR)
                    continue;           /* select() will say it again */
                if (n <= 0 || writen(sockfd, buf, n) != n) {
                    /* connection closed by client, or reset: drop this one */
                    close(sockfd);
                    FD_CLR(sockfd, &allset);
                    client[i] = -1;
                }

                if (--nready <= 0)
                    break;              /* no more readable descriptors */
            }
        }
    }
}
