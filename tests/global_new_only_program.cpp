// A program whose only leakguard include is <leakguard/global_new.hpp> (as a
// test main with doctest.hpp or gtest.hpp, or a server's main, often is):
// LEAKGUARD_OPTIONS is still read at start-up, and applies. The program
// re-runs itself with the variable set. Exit code: the number of failed checks.
#include <leakguard/global_new.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int failures = 0;

void check(bool ok, const char* what, const std::string& output) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "global_new_only_program: check failed: %s; child's stderr:\n%s\n", what, output.c_str());
}

// Runs this program as "child <mode>" with LEAKGUARD_OPTIONS=value; returns its stderr.
std::string run_child(const char* mode, const char* value, int* status) {
  int err_pipe[2];
  if (pipe(err_pipe) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    setenv("LEAKGUARD_OPTIONS", value, 1);
    execl("/proc/self/exe", "global_new_only_program", "child", mode, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err_pipe[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  close(err_pipe[0]);
  waitpid(pid, status, 0);
  return err;
}

// A leak the optimizer cannot remove: the pointer escapes through asm.
void leak_in_scope() {
  LEAKGUARD_SCOPE("request");
  int* p = new int[3];
  asm volatile("" : : "r"(p) : "memory");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 && std::strcmp(argv[1], "child") == 0) {
    if (std::strcmp(argv[2], "leak") == 0) leak_in_scope();
    return 0;
  }
  int status = 0;
  // A bad key is reported once, at start-up, although nothing calls leakguard.
  std::string err = run_child("idle", "bogus=1", &status);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the idle child exits 0", err);
  check(err.find("unknown key in 'bogus=1'") != std::string::npos, "bogus=1 is reported", err);

  // The settings apply: on_leak=log continues; stack_depth=0 keeps only the
  // few frames that name the allocating line.
  err = run_child("leak", "stack_depth=0:on_leak=log", &status);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "on_leak=log: the leaking child exits 0", err);
  check(err.find("scope \"request\"") != std::string::npos, "the leak is reported", err);
  check(err.find("allocated at ") != std::string::npos && err.find("global_new_only_program.cpp:") != std::string::npos &&
            err.find("#6 ") == std::string::npos,
        "stack_depth=0 applies: the site, a few frames", err);

  // Without them, the default: the report and an abort.
  err = run_child("leak", "", &status);
  check(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "by default the leak aborts", err);

  if (failures == 0) std::fputs("global_new_only_program: all checks passed\n", stderr);
  return failures;
}
