/*
 * serv_fork_wait_eintr.c -- a fork-per-client echo server that catches
 * SIGCHLD without SA_RESTART and does not handle EINTR from accept().
 *
 * Mirrors:  tcpserv02 with sig_chld from sigchldwait.c (UNP 5.9), on a
 *           system whose signal() does not restart system calls: the student
 *           installs the handler with sigaction() and sa_flags = 0, and the
 *           accept loop is the book's Accept() wrapper (error => err_sys).
 * Usage:    serv_fork_wait_eintr <port>
 * Verdict:  WRONG.
 * The bug:  when a child exits, SIGCHLD interrupts the parent blocked in
 *           accept(); accept() returns -1 with errno EINTR and the parent
 *           exits with "accept error: Interrupted system call" (UNP 5.9,
 *           "Handling interrupted system calls"). The listening server is
 *           gone after its first client leaves.
 * Caught by: eintr (the parent was blocked in accept when the child exited,
 *           and died). Any scenario with a second client after the first one
 *           left sees nobody listening.
 * Note:     with glibc's signal() (BSD semantics: SA_RESTART) the bug does
 *           not show on Linux; that is why this program calls sigaction().
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

static void sig_chld(int signo)
{
    pid_t pid;
    int stat;

    (void) signo;
    pid = wait(&stat);                  /* ONE child per signal: the bug */
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
        err_quit("usage: serv_fork_wait_eintr <port>");

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
    {
        struct sigaction act;

        act.sa_handler = sig_chld;
        sigemptyset(&act.sa_mask);
        act.sa_flags = 0;               /* no SA_RESTART: the bug */
        if (sigaction(SIGCHLD, &act, NULL) < 0)
            err_sys("sigaction error");
    }

    for (;;) {
        clilen = sizeof(cliaddr);
        if ((connfd = accept(listenfd, (SA *) &cliaddr, &clilen)) < 0)
            err_sys("accept error");

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
