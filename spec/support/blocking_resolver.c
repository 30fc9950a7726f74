/* LD_PRELOAD for client_transport_spec: getaddrinfo() of a name ending in ".blocked.test" never
 * returns, as with a DNS server that does not answer (offline, a real one cannot be had without
 * sending packets off the machine); every other name resolves as usual. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
    static const char suffix[] = ".blocked.test";
    size_t n = node ? strlen(node) : 0, k = sizeof suffix - 1;
    gai_fn real;
    if (n >= k && strcmp(node + n - k, suffix) == 0)
        for (;;) pause();
    *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
    return real ? real(node, service, hints, res) : EAI_FAIL;
}
