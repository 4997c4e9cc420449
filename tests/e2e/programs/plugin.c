/* A shared library loaded with dlopen by dlopen_host: it leaks one block from its own code. */
#include <stdlib.h>

void* plugin_keep;

__attribute__((noinline)) void plugin_leak(void) { plugin_keep = malloc(555); }
