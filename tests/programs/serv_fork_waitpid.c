/*
 * serv_fork_waitpid.c -- the right fork-per-client echo server.
 *
 * Mirrors:  tcpserv04 with sig_chld from sigchldwaitpid.c (UNP 5.10): the
 *           book's Signal() (sigaction with SA_RESTART), a handler that loops
 *           on waitpid(-1, &stat, WNOHANG) until no terminated child is left,
 *           and an accept loop that continues on EINTR.
 * Usage:    serv_fork_waitpid <port>
 * Verdict:  RIGHT: one child per client, no zombie ever stays, survives
 *           EINTR, and a connection reset before accept costs one child, not
 *           the server.
 * Caught by: nothing: every scenario that takes a server must pass it.
 * Note:     the handler's printf assumes stdout is a terminal, as the book
 *           does. On a pipe or a file the unflushed line is copied into every
 *           child forked afterwards and each child's exit() prints it again.
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
        printf("child %d terminated\n", (int) pid);
    return;
}

int main(int argc, char **argv)
{
    int listenfd, connfd, on = 1;
    pid_t childpid;
    socklen_t clilen;
    struct sockaddr_in cliaddr, servaddr;

    if (argc != 2)
        err_quit("usage: serv_fork_waitpid <port>");

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
        clilen = sizeof(cliaddr);
        if ((connfd = accept(listenfd, (SA *) &cliaddr, &clilen)) < 0) {
            if (errno == EINTR)
                continue;               /* back to for() */
            else
                err_sys("accept error");
        }

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
