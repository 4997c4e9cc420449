// Blocks C++ programs refer to by an interior pointer only, one per memcheck heuristic, each
// held by a global that points inside it (memcheck: "still reachable", via its default leak
// heuristics stdstring, length64, newarray and multipleinheritance), plus one block reached
// the same way that matches none of them (possibly lost, in memcheck and heapscope alike).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

// stdstring: the pre-C++11 libstdc++ string layout, length, capacity, refcount, then the
// characters and a NUL; the string object holds a pointer to the characters.
const char* cow_string_chars;

// length64: a 64-bit length of what follows, then the data (sqlite3's malloc does this).
const char* length_prefixed_data;

// newarray: new[] of a type with a destructor stores the element count before the elements.
struct WithDestructor {
  ~WithDestructor() { value = 0; }
  long value = 7;
};
WithDestructor* array_of_objects;

// multipleinheritance: a pointer to the second base of an object points inside it, at that
// base's vtable pointer.
struct First {
  virtual ~First() = default;
  virtual long first() { return 1; }
  long a = 1;
};
struct Second {
  virtual ~Second() = default;
  virtual long second() { return 2; }
  long b = 2;
};
struct Both : First, Second {
  long c = 3;
};
Second* second_base;

// None of those: an interior pointer into a plain block.
const char* plain_interior;

__attribute__((noinline)) void make_blocks() {
  const size_t capacity = 40;
  auto* cow = static_cast<size_t*>(malloc(3 * sizeof(size_t) + capacity + 1));
  cow[0] = 11;        // length
  cow[1] = capacity;  // capacity
  cow[2] = 0;         // refcount
  memcpy(cow + 3, "eleven char", 12);
  cow_string_chars = reinterpret_cast<const char*>(cow + 3);

  auto* prefixed = static_cast<uint64_t*>(malloc(8 + 100));
  prefixed[0] = 100;
  length_prefixed_data = reinterpret_cast<const char*>(prefixed + 1);

  array_of_objects = new WithDestructor[5];

  Both* both = new Both;
  second_base = both;  // points at the Second sub-object, inside the block

  char* plain = static_cast<char*>(malloc(64));
  memset(plain, 1, 64);
  plain_interior = plain + 24;
}

int main() {
  make_blocks();
  return second_base->second() == 2 ? 0 : 1;
}
