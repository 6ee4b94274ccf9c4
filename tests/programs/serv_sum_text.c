/*
 * serv_sum_text.c -- a fork-per-client server that adds two numbers sent as
 * text: "a b\n" in, "a+b\n" out ("input error\n" if the line is not two
 * numbers).
 *
 * Mirrors:  tcpserv04 with str_echo from str_echo08.c (UNP 5.18, "Data
 *           Format", example: passing text strings between client and
 *           server); waitpid loop as in 5.10.
 * Usage:    serv_sum_text <port>; a client is cli_lines (lines "3 4" -> "7").
 * Verdict:  RIGHT: text has no byte order and no size, so any client on any
 *           machine gets the right sum.
 * Caught by: nothing: data-format-text must pass it.
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

/* The book's readline (UNP 3.9): buffered, one read() per MAXLINE bytes. */
static int read_cnt;
static char *read_ptr;
static char read_buf[MAXLINE];

static ssize_t my_read(int fd, char *ptr)
{
    if (read_cnt <= 0) {
again:
        if ((read_cnt = read(fd, read_buf, sizeof(read_buf))) < 0) {
            if (errno == EINTR)
                goto again;
            return -1;
        } else if (read_cnt == 0)
            return 0;
        read_ptr = read_buf;
    }
    read_cnt--;
    *ptr = *read_ptr++;
    return 1;
}

static ssize_t readline(int fd, void *vptr, size_t maxlen)
{
    ssize_t n, rc;
    char c, *ptr = vptr;

    for (n = 1; n < (ssize_t) maxlen; n++) {
        if ((rc = my_read(fd, &c)) == 1) {
            *ptr++ = c;
            if (c == '\n')
                break;                  /* newline is stored, like fgets() */
        } else if (rc == 0) {
            *ptr = 0;
            return n - 1;               /* EOF, n - 1 bytes were read */
        } else
            return -1;                  /* error, errno set by read() */
    }
    *ptr = 0;                           /* null terminate like fgets() */
    return n;
}

static void str_echo(int sockfd)
{
    long arg1, arg2;
    ssize_t n;
    char line[MAXLINE];

    for (;;) {
        if ((n = readline(sockfd, line, MAXLINE)) < 0)
            err_sys("readline error");
        if (n == 0)
            return;                     /* connection closed by other end */

        if (sscanf(line, "%ld%ld", &arg1, &arg2) == 2)
            snprintf(line, sizeof(line), "%ld\n", arg1 + arg2);
        else
            snprintf(line, sizeof(line), "input error\n");

        n = strlen(line);
        if (writen(sockfd, line, n) != n)
            err_sys("writen error");
    }
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
    socklen_t clilen;
    struct sockaddr_in cliaddr, servaddr;

    if (argc != 2)
        err_quit("usage: serv_sum_text <port>");

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
