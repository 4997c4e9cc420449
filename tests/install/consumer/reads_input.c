/* Reads input.txt from its working directory into a heap buffer; fails without it. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  FILE* input = fopen("input.txt", "r");
  if (input == NULL) return 1;
  char* text = malloc(64);
  const size_t got = fread(text, 1, 63, input);
  text[got] = '\0';
  fclose(input);
  const int ok = got == 9;
  free(text);
  return ok ? 0 : 2;
}
