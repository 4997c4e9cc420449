// Entry point of the `heapscope` program: everything lives in the analyzer library (cli.cpp).
#include "cli.h"
#include "crash_handler.h"

int main(int argc, char** argv) {
  heapscope::analyzer::install_crash_handler();
  return heapscope::analyzer::run_cli(argc, argv);
}
