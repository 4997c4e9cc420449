// Wire format shared by preload/ (writer) and analyzer/ (reader). Nothing else defines it.
// This comment is the specification of the shared-memory ring and of every record in it.
// Plain data only: standard headers, no dependencies, usable from the allocation hot path.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace heapscope::format {

inline constexpr uint32_t kRingMagic = 0x48534352;  // "HSCR"
inline constexpr uint16_t kFormatVersion = 11;      // bump on ANY layout change below
inline constexpr uint16_t kOldestTraceVersion = 8;  // trace files from here on are still read
inline constexpr uint32_t kMaxFrames = 64;          // frames per captured stack, hard limit
inline constexpr uint32_t kMaxPath = 1024;          // bytes of a module path or command line kept

// --- The ring -------------------------------------------------------------------------------
// One ring per traced process image, in a file `<session>/<pid>-<nonce>.ring` that the agent
// creates (O_EXCL|O_NOFOLLOW, mode 0600) and the collector maps. Layout: RingHeader, then
// `capacity` bytes of records (capacity is a power of two).
//
// Producers reserve space by CAS on write_pos (never wrapping a record: the tail of the buffer
// is filled with a kPadding record instead), fill the record, then store `kind` last with
// release order. The consumer reads `kind` with acquire; 0 means "not committed yet", so it
// stops at a torn tail. After consuming it zeroes the bytes and publishes read_pos (release).
// A producer that finds no room waits for the consumer: the ring never drops a record.
struct alignas(64) RingHeader {
  uint32_t magic;           // kRingMagic
  uint16_t version;         // kFormatVersion
  uint16_t header_size;     // sizeof(RingHeader), data starts here
  uint64_t capacity;        // bytes of record space, power of two
  int32_t pid;              // writer's pid
  int32_t collector_pid;    // who drains us; a producer stops waiting when it is gone
  uint64_t nonce;           // distinguishes rings of one pid across exec
  alignas(64) std::atomic<uint64_t> write_pos;  // bytes reserved so far (monotonic)
  alignas(64) std::atomic<uint64_t> read_pos;   // bytes consumed so far (monotonic)
  alignas(64) std::atomic<uint32_t> state;      // RingState bits
  std::atomic<uint32_t> waits;                  // times a producer found the ring full
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

enum RingState : uint32_t {
  kRingFinished = 1u << 0,    // agent wrote kAgentEnd; more records may still follow from racing threads
  kRingIncomplete = 1u << 1,  // the agent stopped recording (collector lost, depot full): trace is partial
  kRingDetachRequested = 1u << 2,  // set by the collector: an attached agent ends its session (attach_protocol.h)
};

// --- Records ---------------------------------------------------------------------------------
// Every record starts with EventHeader; sizes are multiples of 8. Kinds are append-only: never
// renumber or reuse one.
enum class EventKind : uint16_t {  // 0 = slot not yet committed
  kPadding = 1,       // EventHeader only (first 8 bytes meaningful); skip `size` bytes
  kProcess = 2,       // ProcessEvent: first record of every ring
  kModule = 3,        // ModuleEvent: a loaded ELF object (at start, after dlopen, on unknown frames)
  kStack = 4,         // StackEvent + uint64_t frames[frame_count]; first sighting of a stack_id
  kAlloc = 5,         // AllocEvent
  kFree = 6,          // FreeEvent
  kCorruption = 7,    // CorruptionEvent: a heap error detected by the agent
  kExit = 8,          // ExitEvent: exit() was called with this status
  kExec = 9,          // ExecEvent: about to execve(); the image ends here unless kExecFailed follows
  kExecFailed = 10,   // EventHeader only: the preceding execve() returned
  kAgentEnd = 11,     // AgentEndEvent: the agent's destructor ran (clean end of recording)
  kFatalSignal = 12,  // FatalSignalEvent: a signal whose default action ends the process is killing us
  kEnding = 13,       // EndingEvent: written by the collector, last in a trace file (never in a ring)
  kPhase = 14,        // PhaseEvent: heapscope_mark_phase() (include/heapscope/heapscope.h)
  kIgnore = 15,       // IgnoreEvent: heapscope_ignore_object(): a live block that is not a leak
  kSample = 16,       // SampleEvent: RSS and the allocator's own statistics, every sample_ms
  kLeakKinds = 17,    // LeakKindsEvent + LeakKindEntry[count]: a reachability scan's verdicts
  kLeakScanEnd = 18,  // LeakScanEndEvent: closes a scan; live blocks it named no kind for are reachable
  kThreadStart = 19,  // ThreadEvent: a thread made with pthread_create starts running
  kThreadExit = 20,   // ThreadEvent: such a thread ends (returns or calls pthread_exit)
  kModuleUnload = 21, // ModuleUnloadEvent: a module sent before is no longer loaded (dlclose)
  kPacked = 22,       // PackedEvent + packed alloc/free events: trace files only (docs/trace-format.md)
  kRedirect = 23,     // RedirectEvent: the attach agent redirected allocation slots (at attach, when modules load)
  kDetach = 24,       // DetachEvent: the attach agent's session ended; written before kAgentEnd
  kAgentMemory = 25,  // AgentMemoryEvent: heapscope's own share of the RSS, right after each kSample
  kMap = 26,          // MapEvent: the program's own mmap() succeeded (or mremap()'s new range)
  kUnmap = 27,        // UnmapEvent: the program's own munmap() (or mremap()'s old range)
};

struct EventHeader {
  uint16_t kind;      // EventKind; stored LAST with release order
  uint16_t flags;     // per-kind
  uint32_t size;      // whole record in bytes, header included, multiple of 8
  uint64_t time_ns;   // CLOCK_MONOTONIC
};
static_assert(sizeof(EventHeader) == 16);

// Which API made or released a block. Append-only.
enum class Api : uint8_t {
  kMalloc = 1, kCalloc = 2, kRealloc = 3, kReallocArray = 4, kMemalign = 5, kPosixMemalign = 6,
  kAlignedAlloc = 7, kValloc = 8, kPvalloc = 9, kFree = 10,
  kNew = 11, kNewArray = 12, kDelete = 13, kDeleteArray = 14,
};

// Which release call a block's allocation requires: free(), delete or delete[].
enum class Family : uint8_t { kMalloc = 1, kNew = 2, kNewArray = 3 };

struct ProcessEvent {
  EventHeader header;
  int32_t pid;
  int32_t parent_pid;
  uint32_t argv_bytes;    // length of `argv`: NUL-separated arguments (truncated at kMaxPath)
  uint32_t exe_bytes;     // length of `exe` (readlink /proc/self/exe)
  uint32_t max_frames;    // agent option, for the report
  uint32_t reserved;
  // followed by char argv[argv_bytes], char exe[exe_bytes], padding to a multiple of 8
};
static_assert(sizeof(ProcessEvent) == 40);

struct ModuleEvent {
  EventHeader header;
  uint64_t load_bias;     // dlpi_addr: add to ELF virtual addresses
  uint64_t start;         // lowest mapped address of a PT_LOAD segment
  uint64_t end;           // one past the highest
  uint32_t path_bytes;    // length of path, no NUL
  uint32_t build_id_bytes;
  uint8_t build_id[32];   // NT_GNU_BUILD_ID, first build_id_bytes valid
  // followed by char path[path_bytes], padding to a multiple of 8
};
static_assert(sizeof(ModuleEvent) == 80);

struct StackEvent {
  EventHeader header;
  uint32_t stack_id;      // > 0; 0 means "no stack" everywhere
  uint32_t frame_count;   // <= kMaxFrames
  // followed by uint64_t frames[frame_count]: return addresses, innermost first
};
static_assert(sizeof(StackEvent) == 24);

struct AllocEvent {
  EventHeader header;
  uint64_t address;       // pointer as returned to the program
  uint64_t size;          // bytes requested (pvalloc: its page-rounded size)
  uint32_t stack_id;
  uint32_t thread_id;
  uint32_t alignment;     // alignment asked for, 0 = default
  uint8_t api;            // Api
  uint8_t family;         // Family
  uint16_t reserved;
};
static_assert(sizeof(AllocEvent) == 48);

// A block released by the program. realloc() emits kFree of the old block, then kAlloc.
// A block freed into the quarantine is reported here at the time of the free call.
struct FreeEvent {
  EventHeader header;
  uint64_t address;
  uint32_t thread_id;
  uint8_t api;            // Api of the release call
  uint8_t reserved[3];
};
static_assert(sizeof(FreeEvent) == 32);

// FreeEvent header.flags. Only in trace files: the collector writes a kFreeImplied free where a
// block is allocated at the address of one still live (the agent did not see that block's free:
// a free through a slot not yet redirected, during an attach). A live heap model takes such an
// allocation as that free; a trace names blocks by ordinal and needs it said. Not a free of the
// program's: it is not counted as one.
enum FreeFlags : uint16_t {
  kFreeImplied = 1u << 0,
};

// Error kinds, append-only. Names match the JSON report's `errors[].kind`.
enum class ErrorKind : uint16_t {
  kOverflow = 1,        // bytes after the block's end were overwritten
  kUnderflow = 2,       // bytes before the block's start were overwritten
  kDoubleFree = 3,      // the block was already freed (it sits in the quarantine)
  kInvalidFree = 4,     // the pointer was never returned by the allocator (or is interior)
  kMismatchedFree = 5,  // released with the wrong family (malloc/delete, new/free, new[]/delete)
  kUseAfterFree = 6,    // the freed block's fill pattern changed while it sat in the quarantine
};

enum CorruptionFlags : uint16_t {
  kDetectedAtExit = 1u << 0,   // found by the final sweep, not by a call of the program
  kDetectedAtAccess = 1u << 1, // --guard-pages: the access itself faulted; stack_id is where
  kAccessWasWrite = 1u << 2,   // with kDetectedAtAccess: the access was a write, else a read
};

struct CorruptionEvent {
  EventHeader header;       // flags: CorruptionFlags
  uint64_t address;         // user pointer concerned
  uint64_t block_size;      // requested size of the block, 0 when not ours
  int64_t bad_offset;       // first damaged byte relative to address (negative = before)
  uint32_t stack_id;        // where it was detected (0 when detected at exit)
  uint32_t alloc_stack_id;  // 0 when unknown
  uint32_t free_stack_id;   // 0 when the block was not freed, or unknown
  uint32_t thread_id;
  uint16_t error;           // ErrorKind
  uint8_t alloc_family;     // Family of the allocation, 0 when unknown
  uint8_t free_api;         // Api of the release call, 0 when none
  uint32_t reserved;
};
static_assert(sizeof(CorruptionEvent) == 64);

struct ExitEvent {
  EventHeader header;
  int32_t status;           // the argument of exit()
  uint32_t thread_id;
};
static_assert(sizeof(ExitEvent) == 24);

// Written from the agent's handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT, installed
// only where the program left the default action; the handler then restores it and re-raises.
// It lets the report say how a process that is not heapscope's own child ended.
struct FatalSignalEvent {
  EventHeader header;
  int32_t signal;
  uint32_t thread_id;
};
static_assert(sizeof(FatalSignalEvent) == 24);

// A phase of the program named through the client API; it begins at this record.
struct PhaseEvent {
  EventHeader header;
  char label[64];         // NUL-terminated, truncated
};
static_assert(sizeof(PhaseEvent) == 80);

struct IgnoreEvent {
  EventHeader header;
  uint64_t address;       // a live block's user pointer
};
static_assert(sizeof(IgnoreEvent) == 24);

enum SampleFlags : uint16_t {
  kSampleHasMallinfo = 1u << 0,  // the allocator underneath is glibc's: the mallinfo2 fields are set
};

// The process as the system and the allocator see it (header.flags: SampleFlags). The mallinfo2
// fields keep glibc's names and meanings (see mallinfo2(3)).
struct SampleEvent {
  EventHeader header;
  uint64_t rss_bytes;       // resident set size, from /proc/self/statm
  uint64_t arena;           // non-mmapped space allocated from the system
  uint64_t ordblks;         // free chunks
  uint64_t hblks;           // mmapped regions
  uint64_t hblkhd;          // bytes in mmapped regions
  uint64_t uordblks;        // bytes in use (allocated chunks)
  uint64_t fordblks;        // free bytes held
  uint64_t keepcost;        // releasable top-most free space
};
static_assert(sizeof(SampleEvent) == 80);

// What of the process's memory is heapscope's, measured with the kSample it follows: resident
// pages of the agent's own mappings (from /proc/self/pagemap: a page counts once the process
// wrote it, so the shared zero page behind a table that was only read does not), and the freed
// blocks the quarantine holds back. The headers and canaries of live blocks are not measured
// here: the reader knows every live block's size and alignment, hence their bytes
// (kAgentMemoryBlockHeaders says the blocks have them; the attach agent's do not).
struct AgentMemoryEvent {
  EventHeader header;          // flags: AgentMemoryFlags
  uint64_t table_bytes;        // the agent's tables: block index, stack depot, walker tables, arena
  uint64_t ring_bytes;         // the event ring's pages mapped in this process
  uint64_t image_bytes;        // libheapscope.so's code and data
  uint64_t quarantine_bytes;   // freed blocks' bytes held in the quarantine
};
static_assert(sizeof(AgentMemoryEvent) == 48);

// Memory the program maps itself with mmap (interpose_mmap.cpp): its own family in the
// reports, beside the heap. The C library's and the loader's own mappings (malloc's arenas,
// thread stacks, dlopen) are made by internal calls and never appear. munmap is recorded
// before the call (so that a racing mmap given the same addresses comes after it in the
// ring), mmap and mremap after it succeeds.
struct MapEvent {
  EventHeader header;   // flags: MapFlags
  uint64_t address;
  uint64_t length;      // bytes asked for; the kernel maps whole pages
  uint32_t stack_id;
  uint32_t thread_id;
  int32_t protection;   // PROT_* (for mremap: the old range's, which the reader knows)
  int32_t map_flags;    // MAP_* as passed (MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED...)
};
static_assert(sizeof(MapEvent) == 48);

enum MapFlags : uint16_t {
  kMapByRemap = 1u << 0,  // the new range of an mremap(); the kUnmap of its old range came just before
};

struct UnmapEvent {
  EventHeader header;   // flags: kUnmapByRemap
  uint64_t address;
  uint64_t length;
  uint32_t thread_id;
  uint32_t reserved;
};
static_assert(sizeof(UnmapEvent) == 40);

enum UnmapFlags : uint16_t {
  kUnmapByRemap = 1u << 0,  // the old range of an mremap(), whose new range follows
};

enum AgentMemoryFlags : uint16_t {
  kAgentMemoryBlockHeaders = 1u << 0,  // live blocks carry a header and canaries (block_header.h)
};

struct ExecEvent {
  EventHeader header;
  uint32_t path_bytes;
  uint32_t vfork_child_pid;  // 0: this image execs (it ends here). Else a vfork child of this process
                             // execs `path` (this image goes on); 0 in traces before format 10
  // followed by char path[path_bytes], padding to a multiple of 8
};
static_assert(sizeof(ExecEvent) == 24);

struct AgentEndEvent {
  EventHeader header;
  uint64_t quarantine_bytes;  // still held in the quarantine at the end
  uint64_t overhead_bytes;    // headers + canaries of live blocks at the end
  uint64_t ring_waits;        // times a producer waited for the collector
};
static_assert(sizeof(AgentEndEvent) == 40);

// --- Attach sessions (include/heapscope/attach_protocol.h) ---------------------------------
// A ring written by the attach agent starts with kProcess, kModule..., then kRedirect; its
// blocks are those allocated since. Frees of blocks from before the attach come as kFree
// records of addresses the ring never allocated.
struct RedirectEvent {
  EventHeader header;
  uint32_t slots;          // slots redirected in this round
  uint32_t modules;        // modules they are in
  uint32_t program_slots;  // of the slots, in the main program
  uint32_t skipped;        // slots naming an allocation function but bound elsewhere, left alone
};
static_assert(sizeof(RedirectEvent) == 32);

enum class DetachReason : uint32_t {
  kRequested = 1,       // the collector asked (--for elapsed, Ctrl-C, SIGTERM)
  kCollectorGone = 2,   // the collector process ended without asking (killed)
  kProcessExit = 3,     // the process is exiting while attached
};

struct DetachEvent {
  EventHeader header;
  uint32_t reason;          // DetachReason
  uint32_t restored_slots;  // slots put back to what they held before the attach
  uint64_t reserved;
};
static_assert(sizeof(DetachEvent) == 32);

// --- Reachability scans (preload/scan/leak_scan.h) -----------------------------------------------
// A scan stops the process's other threads, reads every root (writable memory of modules,
// stacks, registers, TLS) and the heap transitively, then sends kLeakKinds records naming each
// live block that is NOT reachable, and one kLeakScanEnd. Names match the JSON `leaks[].kind`.
enum class LeakKind : uint8_t {
  kDefinite = 1,   // no pointer to it anywhere (one block of each lost cycle is definite)
  kIndirect = 2,   // pointed to only from lost blocks
  kPossible = 3,   // reached, but only through a chain with at least one interior pointer
  kReachable = 4,  // a chain of pointers to block starts leads to it from a root
};

// Trace files only: a run of alloc and free events packed by the collector's trace writer
// (analyzer/packed_events.h), `bytes` of them after this struct, then zero padding. In a trace
// written this way every alloc, free, ignore and leak-kind record names a block by its ordinal
// (1 for the first allocation of the process image, 2 for the next...) instead of its address:
// addresses of blocks are never reported, and ordinals pack far better.
struct PackedEvent {
  EventHeader header;     // time_ns: that of the first event
  uint32_t bytes;         // packed bytes that follow
  uint32_t events;        // how many events they hold
};
static_assert(sizeof(PackedEvent) == 24);

struct LeakKindEntry {
  uint64_t address;       // a live block's user pointer
  uint8_t kind;           // LeakKind
  uint8_t reserved[7];
};
static_assert(sizeof(LeakKindEntry) == 16);

struct LeakKindsEvent {
  EventHeader header;
  uint32_t scan_id;       // which scan (1, 2, ... per process image)
  uint32_t count;
  // followed by LeakKindEntry entries[count]
};
static_assert(sizeof(LeakKindsEvent) == 24);

enum LeakScanFlags : uint16_t {
  kScanAtExit = 1u << 0,     // the exit scan, after atexit handlers and static destructors
  kScanOnDemand = 1u << 1,   // heapscope_leak_check() from the program
  kScanStoppedBySignal = 1u << 2,  // ptrace was not allowed: threads were stopped with a signal
  kScanAtDetach = 1u << 3,   // with kScanAtExit: the attach agent's scan as its session ends; memory
                             // the agent did not hand out (the heap from before attach) counted as roots
};

// Why a scan could not classify (LeakScanEndEvent::status). 0 = classified.
enum class ScanStatus : uint32_t {
  kDone = 0,
  kNoMemory = 1,          // the scan's work arrays could not be mapped
  kNoMemoryMap = 2,       // /proc/self/maps could not be read
  kDisabled = 3,          // the leak_check option is off
  kAgentMemoryUnlisted = 4,  // some of the agent's own memory could not be listed, so the scan
                             // could not tell it from the program's: nothing is classified
};

// Closes a scan (header.flags: LeakScanFlags). Threads that could not be stopped kept running
// during the scan and their registers were not read (their whole stack mappings were scanned).
struct LeakScanEndEvent {
  EventHeader header;
  uint32_t scan_id;
  uint32_t status;              // ScanStatus
  uint32_t threads;             // threads of the process, the scanning one included
  uint32_t threads_unstopped;   // threads that did not answer the stop signal in time
  uint64_t blocks;              // live blocks classified
  uint64_t root_bytes;          // bytes of roots scanned (globals, stacks, registers, TLS, ...)
  uint64_t heap_bytes;          // bytes of blocks scanned (those reached)
  uint64_t duration_ns;         // the whole scan: freezing the index to sending the verdicts
};
static_assert(sizeof(LeakScanEndEvent) == 64);

// Threads made by pthread_create (the agent wraps their start routine). A thread that ends
// because the process does (exit() elsewhere, a fatal signal) has no kThreadExit.
struct ThreadEvent {
  EventHeader header;
  uint32_t thread_id;         // kernel tid, as in AllocEvent::thread_id
  uint32_t parent_thread_id;  // who called pthread_create (kThreadStart), else 0
};
static_assert(sizeof(ThreadEvent) == 24);

// Names a kModule record's module by its range and bias (the same range may later hold another).
struct ModuleUnloadEvent {
  EventHeader header;
  uint64_t load_bias;
  uint64_t start;
  uint64_t end;
};
static_assert(sizeof(ModuleUnloadEvent) == 40);

template <typename T>
inline constexpr bool kIsRecord =
    std::is_trivially_copyable_v<T> && sizeof(T) % 8 == 0 && offsetof(T, header) == 0;
static_assert(kIsRecord<ProcessEvent> && kIsRecord<ModuleEvent> && kIsRecord<StackEvent> &&
              kIsRecord<AllocEvent> && kIsRecord<FreeEvent> && kIsRecord<CorruptionEvent> &&
              kIsRecord<ExitEvent> && kIsRecord<ExecEvent> && kIsRecord<AgentEndEvent> &&
              kIsRecord<FatalSignalEvent> && kIsRecord<PhaseEvent> && kIsRecord<IgnoreEvent> &&
              kIsRecord<SampleEvent> && kIsRecord<LeakKindsEvent> && kIsRecord<LeakScanEndEvent> &&
              kIsRecord<ThreadEvent> && kIsRecord<ModuleUnloadEvent> && kIsRecord<PackedEvent>);

// Rounds a record size up to the 8-byte multiple the ring requires.
constexpr uint32_t record_size(size_t bytes) { return static_cast<uint32_t>((bytes + 7) & ~size_t{7}); }

// --- Trace files -------------------------------------------------------------------------------
// `heapscope run --output DIR` writes one trace per process image: a TraceFileHeader, then a
// zstd stream (one or more frames) whose content is the image's records exactly as they came out
// of its ring (padding dropped), in ring order, ending with one kEnding record from the
// collector. A trace without kEnding was cut short (the collector died): everything before the
// cut is still valid.
inline constexpr char kTraceMagic[8] = {'H', 'S', 'T', 'R', 'A', 'C', 'E', '1'};

struct TraceFileHeader {
  char magic[8];          // kTraceMagic
  uint16_t version;       // kFormatVersion of the records inside
  uint16_t header_size;   // sizeof(TraceFileHeader)
  uint32_t compression;   // 1 = zstd
  int32_t pid;            // the image's pid, for people listing files
  uint32_t reserved;
};
static_assert(sizeof(TraceFileHeader) == 24);

enum EndingFlags : uint16_t {
  kEndingLaunched = 1u << 0,      // the process `heapscope run` started
  kEndingStillRunning = 1u << 1,  // it had not ended when the collector stopped waiting
  kEndingIncomplete = 1u << 2,    // its agent stopped recording early (ring marked incomplete)
};

// How the image ended, as the collector knows it (header.flags: EndingFlags).
struct EndingEvent {
  EventHeader header;
  int32_t exit_code;      // -1 when unknown
  int32_t signal;         // 0 when none or unknown
  uint64_t ring_waits;    // times a producer waited for the collector
};
static_assert(sizeof(EndingEvent) == 32 && kIsRecord<EndingEvent>);

// Environment variables the collector sets for the agent.
inline constexpr const char* kSessionEnv = "HEAPSCOPE_SESSION";        // directory for ring files
inline constexpr const char* kCollectorPidEnv = "HEAPSCOPE_COLLECTOR";  // collector pid
inline constexpr const char* kOptionsEnv = "HEAPSCOPE_OPTIONS";         // key=value:key=value

// Where session directories (the rings) are made: HEAPSCOPE_RING_DIR if set, else /dev/shm
// when it is a writable directory (memory: a ring on a disk file system costs block allocation
// and writeback for every page the program fills), else TMPDIR, else /tmp.
inline constexpr const char* kRingDirEnv = "HEAPSCOPE_RING_DIR";
inline constexpr const char* kSharedMemoryDir = "/dev/shm";

}  // namespace heapscope::format
