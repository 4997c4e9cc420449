/* dlopen a plugin that leaks 555 bytes from its own function, dlclose it (keeping nothing of
 * it mapped), then allocate and leak 666 bytes from the host. Both leaks must be symbolized:
 * the plugin's frame in the plugin's file even though it is unloaded by the end.
 * usage: dlopen_host PATH_TO_PLUGIN */
#include <dlfcn.h>
#include <stdlib.h>

static void* keep;

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  void* plugin = dlopen(argv[1], RTLD_NOW);
  if (plugin == NULL) return 3;
  void (*leak)(void) = (void (*)(void))dlsym(plugin, "plugin_leak");
  if (leak == NULL) return 4;
  leak();
  dlclose(plugin);
  keep = malloc(666);
  return 0;
}
