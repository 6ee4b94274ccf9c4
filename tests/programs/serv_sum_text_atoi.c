/*
 * serv_sum_text_atoi.c -- a fork-per-client server that adds two numbers sent
 * as text, parsed the quick way: strtok and atoi into ints.
 *
 * Mirrors:  tcpserv04 with str_echo08 (UNP 5.18, "Data Format": passing text
 *           strings) as a student writes it without sscanf.
 * Usage:    serv_sum_text_atoi <port>; a client is cli_lines ("3 4" -> "7").
 * Verdict:  WRONG.
 * The bug:  atoi never says a word is not a number, so "one two" gets "0"
 *           instead of "input error"; and int is 32 bits, so
 *           "2147483647 1" overflows to "-2147483648" (the book adds longs).
 * Caught by: data-format-text (the answers to the book's lines, a bad line
 *           and a large sum).
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
    int arg1, arg2;
    ssize_t n;
    char line[MAXLINE], *first, *second;

    for (;;) {
        if ((n = readline(sockfd, line, MAXLINE)) < 0)
            err_sys("readline error");
        if (n == 0)
            return;                     /* connection closed by other end */

        first = strtok(line, " \t\r\n");
        second = strtok(NULL, " \t\r\n");
        arg1 = atoi(first ? first : "0");   /* a missing number counts as 0 */
        arg2 = atoi(second ? second : "0");
        snprintf(line, sizeof(line), "%d\n", arg1 + arg2);

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
        err_quit("usage: serv_sum_text_atoi <port>");

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
