/*
 * cli_sum_binary.c -- the client of the binary sum server: reads "a b" lines
 * from the terminal, sends struct args { long arg1; long arg2; }, reads
 * struct result { long sum; } and prints the sum.
 *
 * Mirrors:  tcpcli09 + str_cli09 and sum.h (UNP 5.18, "Data Format",
 *           example: passing binary structures between client and server).
 * Usage:    cli_sum_binary <IPaddress> <port>   (lines "a b" on stdin)
 * Verdict:  WRONG (the book's own point), as serv_sum_binary: right only
 *           against a server of the same byte order and sizeof(long).
 * The bug:  binary structures as a protocol: against a big-endian server the
 *           sums are nonsense; against a server whose long has another size
 *           the two sides disagree on how many bytes make a request, and the
 *           client blocks in readn or prints sums from the wrong bytes.
 * Caught by: data-format-binary (with a server of another byte order or
 *           long size).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* sum.h (UNP 5.18): the "protocol" is the C compiler's layout of two longs. */
struct args {
    long arg1;
    long arg2;
};

struct result {
    long sum;
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

static int tcp_connect(const char *ip, const char *port)
{
    int sockfd;
    struct sockaddr_in servaddr;

    if ((sockfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        err_sys("socket error");
    memset(&servaddr, 0, sizeof(servaddr));
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons(atoi(port));
    if (inet_pton(AF_INET, ip, &servaddr.sin_addr) <= 0)
        err_quit("inet_pton error: not an IPv4 address");
    if (connect(sockfd, (SA *) &servaddr, sizeof(servaddr)) < 0)
        err_sys("connect error");
    return sockfd;
}

static void str_cli(FILE *fp, int sockfd)
{
    char sendline[MAXLINE];
    struct args args;
    struct result result;
    ssize_t n;

    while (fgets(sendline, MAXLINE, fp) != NULL) {
        if (sscanf(sendline, "%ld%ld", &args.arg1, &args.arg2) != 2) {
            printf("invalid input: %s", sendline);
            continue;
        }
        if (writen(sockfd, &args, sizeof(args)) < 0)
            err_sys("writen error");

        if ((n = readn(sockfd, &result, sizeof(result))) < 0)
            err_sys("readn error");
        if (n == 0)
            err_quit("str_cli: server terminated prematurely");

        printf("%ld\n", result.sum);
    }
    if (ferror(fp))
        err_sys("fgets error");
}

int main(int argc, char **argv)
{
    int sockfd;

    if (argc != 3)
        err_quit("usage: cli_sum_binary <IPaddress> <port>");
    sockfd = tcp_connect(argv[1], argv[2]);
    str_cli(stdin, sockfd);             /* do it all */
    close(sockfd);
    exit(0);
}
