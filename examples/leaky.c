/* A small program with the bugs heapscope exists to find: two leak sites, a one-byte heap
 * overflow, and a double free. Run it as `heapscope run -- ./build/bin/leaky`. */
#include <stdlib.h>
#include <string.h>

struct node {
  struct node* next;
  char name[24];
};

/* Leaks a linked list of `count` nodes: one record per allocation stack. */
static struct node* make_list(int count) {
  struct node* head = NULL;
  for (int i = 0; i < count; ++i) {
    struct node* fresh = malloc(sizeof *fresh);
    fresh->next = head;
    strcpy(fresh->name, "node");
    head = fresh;
  }
  return head;
}

static char* copy_name(const char* name) {
  char* copy = malloc(strlen(name)); /* bug: no room for the terminating NUL */
  strcpy(copy, name);                /* writes one byte past the end */
  return copy;
}

static void release_twice(void) {
  char* buffer = malloc(64);
  free(buffer);
  free(buffer); /* bug: double free */
}

int main(void) {
  struct node* list = make_list(3);
  (void)list;
  char* name = copy_name("heapscope");
  free(name);
  release_twice();
  char* forgotten = calloc(100, 4); /* bug: never freed */
  forgotten[0] = 1;
  return 0;
}
