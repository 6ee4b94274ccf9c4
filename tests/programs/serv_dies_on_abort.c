/*
 * serv_dies_on_abort.c -- a fork-per-client echo server (waitpid loop, EINTR
 * handled) whose parent logs each client with getpeername() and treats any
 * error from it as fatal.
 *
 * Mirrors:  tcpserv04 (UNP 5.10), plus the "connection from %s:%d" line a
 *           student adds after accept() (the book's daytimetcpsrv1 prints it
 *           from accept's own address argument; this student passes NULL to
 *           accept and asks getpeername() instead).
 * Usage:    serv_dies_on_abort <port>
 * Verdict:  WRONG.
 * The bug:  a connection reset by the client after the three-way handshake
 *           but before accept() (UNP 5.11, "Connection Abort before accept
 *           Returns"): Linux's accept() still returns it, and getpeername()
 *           on it fails with ENOTCONN, so the PARENT exits with
 *           "getpeername error: Transport endpoint is not connected" and
 *           nobody listens any more. One aborted connection takes the whole
 *           server down; the book's servers lose at most one child.
 * Caught by: accept-abort (after the RST before accept, the server must
 *           still answer the next client).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
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

static void str_echo(int sockfd)
{
    ssize_t n;
    char buf[MAXLINE];

again:
    while ((n = read(sockfd, buf, MAXLINE)) > 0)
        if (writen(sockfd, buf, n) != n)
            err_sys("str_echo: writen error");
    if (n < 0 && errno == EINTR)
        goto again;
    else if (n < 0)
        err_sys("str_echo: read error");
}

typedef void Sigfunc(int);

/* The book's Signal() (UNP 5.8): sigaction, with SA_RESTART for all but SIGALRM. */
static Sigfunc *Signal(int signo, Sigfunc *func)
{
    struct sigaction act, oact;

    act.sa_handler = func;
    sigemptyset(&act.sa_mask);
    act.sa_flags = 0;
    if (signo != SIGALRM)
        act.sa_flags |= SA_RESTART;
    if (sigaction(signo, &act, &oact) < 0)
        return SIG_ERR;
    return oact.sa_handler;
}

static void sig_chld(int signo)
{
    pid_t pid;
    int stat;

    (void) signo;
    while ((pid = waitpid(-1, &stat, WNOHANG)) > 0)
        ;
    return;
}

int main(int argc, char **argv)
{
    int listenfd, connfd, on = 1;
    pid_t childpid;
    socklen_t len;
    struct sockaddr_in peer, servaddr;
    char str[INET_ADDRSTRLEN];

    if (argc != 2)
        err_quit("usage: serv_dies_on_abort <port>");

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
    Signal(SIGCHLD, sig_chld);

    for (;;) {
        if ((connfd = accept(listenfd, NULL, NULL)) < 0) {
            if (errno == EINTR)
                continue;               /* back to for() */
            else
                err_sys("accept error");
        }
        len = sizeof(peer);
        if (getpeername(connfd, (SA *) &peer, &len) < 0)
            err_sys("getpeername error");   /* the bug: the whole server exits */
        printf("connection from %s:%d\n",
               inet_ntop(AF_INET, &peer.sin_addr, str, sizeof(str)), ntohs(peer.sin_port));
        fflush(stdout);

        if ((childpid = fork()) < 0)
            err_sys("fork error");
        if (childpid == 0) {            /* child process */
            close(listenfd);            /* close listening socket */
            str_echo(connfd);           /* process the request */
            exit(0);
        }
        close(connfd);                  /* parent closes connected socket */
    }
}
