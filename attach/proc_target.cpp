// Reading /proc/PID for the attach preflight (see proc_target.h).
#include "proc_target.h"

#include <dirent.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace heapscope::attach {
namespace {

std::ifstream open_proc(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::system_error(errno ? errno : ENOENT, std::generic_category(), path);
  return in;
}

}  // namespace

ProcessStatus read_status(int pid) {
  std::ifstream in = open_proc("/proc/" + std::to_string(pid) + "/status");
  ProcessStatus status;
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (key == "Name") status.name = value;
    else if (key == "State" && !value.empty()) status.state = value[0];
    else if (key == "TracerPid") status.tracer_pid = std::atoi(value.c_str());
    else if (key == "Uid") status.uid = std::atoi(value.c_str());
    else if (key == "Seccomp") status.seccomp = std::atoi(value.c_str());
  }
  return status;
}

std::vector<Mapping> read_maps(int pid) {
  std::ifstream in = open_proc("/proc/" + std::to_string(pid) + "/maps");
  std::vector<Mapping> maps;
  std::string line;
  while (std::getline(in, line)) {
    Mapping mapping;
    char perms[8] = {};
    unsigned long long begin = 0, end = 0, offset = 0;
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s %n", &begin, &end, perms, &offset, &path_at) < 4)
      continue;
    mapping.begin = begin;
    mapping.end = end;
    mapping.offset = offset;
    mapping.readable = perms[0] == 'r';
    mapping.writable = perms[1] == 'w';
    mapping.executable = perms[2] == 'x';
    if (path_at > 0 && static_cast<size_t>(path_at) < line.size()) mapping.path = line.substr(path_at);
    maps.push_back(std::move(mapping));
  }
  return maps;
}

std::vector<int> list_threads(int pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) throw std::system_error(errno, std::generic_category(), path);
  std::vector<int> tids;
  while (dirent* entry = readdir(dir))
    if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') tids.push_back(std::atoi(entry->d_name));
  closedir(dir);
  return tids;
}

std::optional<ThreadSyscall> read_thread_syscall(int pid, int tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall");
  std::string line;
  if (!in || !std::getline(in, line) || line.empty()) return std::nullopt;
  ThreadSyscall result;
  result.tid = tid;
  if (line.rfind("running", 0) == 0) {
    result.running = true;
    return result;
  }
  // "NR arg1 .. arg6 SP PC", or "-1 SP PC" when blocked outside a system call.
  std::istringstream fields(line);
  std::vector<std::string> words;
  for (std::string word; fields >> word;) words.push_back(word);
  if (words.size() < 3) return std::nullopt;
  result.number = std::strtol(words[0].c_str(), nullptr, 10);
  result.stack_pointer = std::strtoull(words[words.size() - 2].c_str(), nullptr, 16);
  result.pc = std::strtoull(words.back().c_str(), nullptr, 16);
  return result;
}

const Mapping* mapping_of(const std::vector<Mapping>& maps, uint64_t address) {
  for (const Mapping& mapping : maps)
    if (address >= mapping.begin && address < mapping.end) return &mapping;
  return nullptr;
}

std::optional<LoadedObject> find_object(const std::vector<Mapping>& maps, const std::string& prefix) {
  std::optional<LoadedObject> found;
  for (const Mapping& mapping : maps) {
    const size_t slash = mapping.path.rfind('/');
    if (mapping.path.empty() || mapping.path[0] != '/') continue;
    const std::string name = mapping.path.substr(slash + 1);
    if (name.rfind(prefix, 0) != 0) continue;
    if (found && found->path != mapping.path) continue;  // the first object of that name only
    if (!found) {
      found = LoadedObject{mapping.path, mapping.begin - mapping.offset, 0, 0};
    }
    if (mapping.offset == 0) found->base = mapping.begin;
    if (mapping.executable) {
      if (found->text_begin == 0 || mapping.begin < found->text_begin) found->text_begin = mapping.begin;
      if (mapping.end > found->text_end) found->text_end = mapping.end;
    }
  }
  return found;
}

}  // namespace heapscope::attach
