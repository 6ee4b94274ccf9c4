/* A str_cli echo client in the style of UNP's tcpcli01, written independently
 * of netbed's apps: the "user's own client" in the tests. stdio all along, as
 * the book's client, so it relies on netbed giving it a terminal. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: echo-client IPADDRESS [PORT]\n"); return 2; }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(argc > 2 ? atoi(argv[2]) : 9877)};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect error"); return 1; }
    FILE *in = fdopen(fd, "r");
    char line[4096], echo[4096];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (write(fd, line, strlen(line)) < 0) { perror("write error"); return 1; }
        if (fgets(echo, sizeof echo, in) == NULL) {
            if (ferror(in)) { perror("str_cli: readline error"); return 1; }
            fprintf(stderr, "str_cli: server terminated prematurely\n");
            return 1;
        }
        fputs(echo, stdout);
    }
    return 0;
}
