// Every operator new/delete form used correctly (no error, no leak expected), plus the
// contract of a failing new: std::bad_alloc, the new-handler loop, nothrow returning nullptr.
#include <cstdint>
#include <cstdlib>
#include <new>
#include <unistd.h>

struct alignas(256) Wide {
  char bytes[256];
};

static int handler_calls = 0;

int main() {
  int failures = 0;
  auto check = [&](bool ok) { failures += ok ? 0 : 1; };

  int* one = new int(1);
  delete one;
  int* many = new int[10];
  delete[] many;
  int* quiet = new (std::nothrow) int(2);
  check(quiet != nullptr);
  delete quiet;
  int* quiet_many = new (std::nothrow) int[3];
  delete[] quiet_many;
  Wide* wide = new Wide;
  check(reinterpret_cast<uintptr_t>(wide) % 256 == 0);
  delete wide;
  Wide* wides = new Wide[3];
  check(reinterpret_cast<uintptr_t>(wides) % 256 == 0);
  delete[] wides;
  void* raw = ::operator new(40);
  ::operator delete(raw, 40);  // sized delete
  void* raw_aligned = ::operator new(64, std::align_val_t(128));
  check(reinterpret_cast<uintptr_t>(raw_aligned) % 128 == 0);
  ::operator delete(raw_aligned, std::align_val_t(128));

  // Failing new: bad_alloc, no handler installed.
  bool caught = false;
  try {
    void* impossible = ::operator new(static_cast<size_t>(-1) / 2);
    ::operator delete(impossible);
  } catch (const std::bad_alloc&) {
    caught = true;
  }
  check(caught);
  check(::operator new(static_cast<size_t>(-1) / 2, std::nothrow) == nullptr);

  // The new-handler runs, and its bad_alloc reaches the caller.
  std::set_new_handler([] {
    ++handler_calls;
    if (handler_calls >= 3) {
      std::set_new_handler(nullptr);
    }
  });
  caught = false;
  try {
    void* impossible = ::operator new(static_cast<size_t>(-1) / 2);
    ::operator delete(impossible);
  } catch (const std::bad_alloc&) {
    caught = true;
  }
  check(caught && handler_calls == 3);

  if (failures != 0) {
    (void)!write(2, "cxx_new: FAILED\n", 16);
    return 1;
  }
  return 0;
}
