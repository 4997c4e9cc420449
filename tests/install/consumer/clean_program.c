#include <stdlib.h>
#include <string.h>

int main(void) {
  char* text = malloc(64);
  strcpy(text, "nothing is lost");
  free(text);
  return 0;
}
