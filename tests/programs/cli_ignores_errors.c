/*
 * cli_ignores_errors.c -- a careless echo client: it never looks at what
 * write() returns, ignores SIGPIPE "so it cannot crash", and when the
 * server's answer does not come (EOF or an error) it just stops, exit 0,
 * without a word.
 *
 * Mirrors:  tcpcli01 + str_cli (UNP 5.4-5.5) with every check the book makes
 *           removed; the SIG_IGN is 5.13's advice taken half-way (ignore
 *           SIGPIPE, but then "check for EPIPE" is forgotten).
 * Usage:    cli_ignores_errors <IPaddress> <port>   (lines on stdin)
 * Verdict:  WRONG.
 * The bug:  when the server process dies (UNP 5.12) or the server's socket
 *           has been reset (5.13), the user is told nothing: no "server
 *           terminated prematurely", no EPIPE, no "Connection reset by
 *           peer", and the exit status is 0 as after a normal session; the
 *           rest of the input is silently dropped.
 * Caught by: server-process-killed and sigpipe (the client must report the
 *           server's death: a message and a failure status, or death by
 *           SIGPIPE; this one exits 0 silently).
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

static void err_quit(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "%s\n", msg);
    exit(1);
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
        err_quit("socket error");
    memset(&servaddr, 0, sizeof(servaddr));
    servaddr.sin_family = AF_INET;
    servaddr.sin_port = htons(atoi(port));
    if (inet_pton(AF_INET, ip, &servaddr.sin_addr) <= 0)
        err_quit("inet_pton error: not an IPv4 address");
    if (connect(sockfd, (SA *) &servaddr, sizeof(servaddr)) < 0) {
        perror("connect error");
        exit(1);
    }
    return sockfd;
}

static void str_cli(FILE *fp, int sockfd)
{
    char sendline[MAXLINE], recvline[MAXLINE];

    while (fgets(sendline, MAXLINE, fp) != NULL) {
        write(sockfd, sendline, strlen(sendline));      /* what could go wrong */

        if (readline(sockfd, recvline, MAXLINE) <= 0)
            break;                      /* no answer: just stop */

        fputs(recvline, stdout);
    }
}

int main(int argc, char **argv)
{
    int sockfd;

    if (argc != 3)
        err_quit("usage: cli_ignores_errors <IPaddress> <port>");

    signal(SIGPIPE, SIG_IGN);           /* so the program never crashes */
    sockfd = tcp_connect(argv[1], argv[2]);
    str_cli(stdin, sockfd);
    close(sockfd);
    return 0;
}
