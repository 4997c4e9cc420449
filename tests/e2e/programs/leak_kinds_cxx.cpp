// A C++ program whose heap at exit is all held by globals, the runtime and live threads, plus
// one deliberate leak (lost_array). Nothing but lost_array may come out definite, indirect or
// possible: containers in globals, iostreams, a caught exception, thread_local strings.
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

std::vector<std::string> names;
std::map<int, std::string> by_id;
std::unordered_map<std::string, std::vector<int>> index_of;
std::list<std::unique_ptr<double[]>> buffers;
std::shared_ptr<std::string> shared;
thread_local std::string thread_name;

__attribute__((noinline)) int* lost_array() { return new int[10]; }

int main() {
  for (int i = 0; i < 100; ++i) {
    names.push_back("a name long enough to live on the heap #" + std::to_string(i));
    by_id[i] = names.back();
    index_of[names.back()].push_back(i);
    buffers.push_back(std::make_unique<double[]>(8));
  }
  shared = std::make_shared<std::string>("shared state that outlives main, on the heap");
  thread_name = "the main thread, with a name too long for the small-string buffer";
  try {
    throw std::runtime_error("an exception message long enough to be allocated on the heap");
  } catch (const std::exception& error) {
    std::cout << "caught: " << error.what() << '\n';
  }
  std::thread worker([] { thread_name = "a worker thread that ends before exit, long name"; });
  worker.join();
  int* leaked = lost_array();
  leaked[0] = 1;
  leaked = nullptr;
  std::cout << "names: " << names.size() << std::endl;
  return 0;
}
