// Entry point of the `heapscope` program: everything lives in the analyzer library (cli.cpp).
#include "cli.h"

int main(int argc, char** argv) { return heapscope::analyzer::run_cli(argc, argv); }
