/*
 * serv_sum_binary_int.c -- the binary sum server with sum.h written with int:
 * struct args { int arg1; int arg2; } in, struct result { int sum; } out.
 *
 * Mirrors:  tcpserv04 with str_echo09 and sum.h (UNP 5.18, "Data Format":
 *           passing binary structures), as a student writes sum.h with int
 *           "because the numbers are small".
 * Usage:    serv_sum_binary_int <port>; the book's client is cli_sum_binary.
 * Verdict:  WRONG.
 * The bug:  the structures' sizes differ: the book's client (and netbed's in
 *           the native format) sends two 8-byte longs, 16 bytes a request;
 *           this server reads 8 bytes as its struct args (the low and high
 *           halves of arg1), answers 4 bytes, then reads arg2's halves as
 *           another request: "1 2" comes back as 1 + 2 * 2^32 = 8589934593.
 * Caught by: data-format-binary (netbed's native-format client must get the
 *           right sums; the message names the size mismatch).
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

/* sum.h, with int: the numbers are small anyway */
struct args {
    int arg1;
    int arg2;
};

struct result {
    int sum;
};

static ssize_t readn(int fd, void *vptr, size_t n)
{
    size_t nleft = n;
    ssize_t nread;
    char *ptr = vptr;

    while (nleft > 0) {
        if ((nread = read(fd, ptr, nleft)) < 0) {
            if (errno == EINTR)
                nread = 0;              /* and call read() again */
            else
                return -1;
        } else if (nread == 0)
            break;                      /* EOF */
        nleft -= nread;
        ptr += nread;
    }
    return n - nleft;                   /* return >= 0 */
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
    struct args args;
    struct result result;

    for (;;) {
        if ((n = readn(sockfd, &args, sizeof(args))) < 0)
            err_sys("readn error");
        if (n == 0)
            return;                     /* connection closed by other end */

        result.sum = args.arg1 + args.arg2;
        if (writen(sockfd, &result, sizeof(result)) != sizeof(result))
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
        err_quit("usage: serv_sum_binary_int <port>");

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
