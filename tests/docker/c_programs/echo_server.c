/* A fork-per-client echo server in the style of UNP's tcpserv04, written
 * independently of netbed's apps: the "user's own server" in the tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

static void str_echo(int fd) {
    char buf[4096];
    ssize_t n;
again:
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(fd, buf, (size_t)n) != n) { perror("str_echo: write"); exit(1); }
    if (n < 0 && errno == EINTR) goto again;
    if (n < 0) { perror("str_echo: read"); exit(1); }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 9877, on = 1;
    int listenfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_RESTART};
    setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(listenfd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    listen(listenfd, 16);
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        int connfd = accept(listenfd, NULL, NULL);
        if (connfd < 0) { if (errno == EINTR) continue; perror("accept"); return 1; }
        if (fork() == 0) { close(listenfd); str_echo(connfd); exit(0); }
        close(connfd);
    }
}
