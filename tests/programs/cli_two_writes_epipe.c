/*
 * cli_two_writes_epipe.c -- the two-writes echo client (first byte, sleep(1),
 * the rest) that ignores SIGPIPE and so reports EPIPE from its second write.
 *
 * Mirrors:  tcpcli11 + str_cli11 (UNP 5.13, "SIGPIPE Signal") with the
 *           book's advice followed: ignore SIGPIPE and check write's result.
 * Usage:    cli_two_writes_epipe <IPaddress> <port>   (lines on stdin)
 * Verdict:  RIGHT: the second write after the RST fails with EPIPE and the
 *           client says "writen error: Broken pipe" and exits 1.
 * Caught by: nothing: sigpipe must pass it (EPIPE reported, not SIGPIPE's
 *           death).
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
    char sendline[MAXLINE], recvline[MAXLINE];
    ssize_t n;

    while (fgets(sendline, MAXLINE, fp) != NULL) {
        if (writen(sockfd, sendline, 1) < 0)
            err_sys("writen error");
        sleep(1);
        if (writen(sockfd, sendline + 1, strlen(sendline) - 1) < 0)
            err_sys("writen error");

        if ((n = readline(sockfd, recvline, MAXLINE)) < 0)
            err_sys("readline error");
        if (n == 0)
            err_quit("str_cli: server terminated prematurely");

        fputs(recvline, stdout);
    }
    if (ferror(fp))
        err_sys("fgets error");
}

int main(int argc, char **argv)
{
    int sockfd;

    if (argc != 3)
        err_quit("usage: cli_two_writes_epipe <IPaddress> <port>");
    signal(SIGPIPE, SIG_IGN);           /* write returns EPIPE instead */
    sockfd = tcp_connect(argv[1], argv[2]);
    str_cli(stdin, sockfd);             /* do it all */
    close(sockfd);
    exit(0);
}
