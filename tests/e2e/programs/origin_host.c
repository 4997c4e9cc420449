/* Loads its plugin the way installed programs do: by a bare name found through its own RUNPATH
 * ($ORIGIN/plugins), and by a $ORIGIN path. glibc's dlopen searches its caller's RUNPATH and
 * expands $ORIGIN for its caller: an agent that put itself between the program and dlopen
 * would make both fail. Then calls the plugin's leak. Prints "loaded"; exits 1 if a load fails. */
#include <dlfcn.h>
#include <stdio.h>

int main(void) {
  void* by_name = dlopen("libplugin.so", RTLD_NOW);
  if (by_name == NULL) {
    printf("dlopen by name failed: %s\n", dlerror());
    return 1;
  }
  void* by_origin = dlopen("$ORIGIN/plugins/libplugin.so", RTLD_NOW);
  if (by_origin == NULL) {
    printf("dlopen by $ORIGIN failed: %s\n", dlerror());
    return 1;
  }
  void (*plugin_leak)(void) = (void (*)(void))dlsym(by_name, "plugin_leak");
  if (plugin_leak != NULL) plugin_leak();
  printf("loaded\n");
  return 0;
}
