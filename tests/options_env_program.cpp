// LEAKGUARD_OPTIONS is read once at start-up: this program re-runs itself
// with the variable set and checks what the child parsed and printed; run as
// root, also that a setuid-root copy run by another user ignores it.
// Exit code: the number of failed checks.
#include <leakguard.hpp>
#include <leakguard/implementation.hpp>  // no global_new.hpp: the runtime alone

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

int failures = 0;

#define CHECK_ENV(cond, what)                                                           \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "options_env_program: check failed: %s (%s)\n", #cond, what); \
      ++failures;                                                                       \
    }                                                                                   \
  } while (0)

// The child prints the options in force on stdout.
int print_options() {
  const leakguard::runtime_options o = leakguard::options();
  std::printf("stack_depth=%d on_leak=%s report=%s report_path=%s sample_bytes=%zu log_interval=%d\n", o.stack_depth,
              o.on_leak == leakguard::leak_action::log ? "log" : "abort",
              o.report == leakguard::report_format::json ? "json" : "text", o.report_path.c_str(), o.sample_bytes,
              o.log_interval);
  return 0;
}

// The child prints the suppression patterns in force, one per line.
int print_suppressions() {
  for (const std::string& p : leakguard::suppressions()) std::printf("pattern: %s\n", p.c_str());
  return 0;
}

struct child_output {
  std::string out, err;
  int status = -1;
};

// Runs `self` as "child" (or `mode`) with LEAKGUARD_OPTIONS=value (unset if
// null); as user `as` with umask 000 when given.
child_output run_child(const char* self, const char* value, const char* mode = "child",
                       const passwd* as = nullptr) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    if (value) setenv("LEAKGUARD_OPTIONS", value, 1);
    else unsetenv("LEAKGUARD_OPTIONS");
    if (as && (setgroups(0, nullptr) != 0 || setresgid(as->pw_gid, as->pw_gid, as->pw_gid) != 0 ||
               setresuid(as->pw_uid, as->pw_uid, as->pw_uid) != 0)) {
      _exit(126);
    }
    if (as) umask(0);
    execl(self, self, mode, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  child_output r;
  char buf[4096];
  for (ssize_t n; (n = read(out_pipe[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<std::size_t>(n));
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) > 0;) r.err.append(buf, static_cast<std::size_t>(n));
  close(out_pipe[0]);
  close(err_pipe[0]);
  waitpid(pid, &r.status, 0);
  return r;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::size_t count(const std::string& s, const char* part) {
  std::size_t n = 0;
  for (std::size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The setuid child: says whether it really runs privileged, prints its
// options, and leaks through log_leak (to report_path, if it were honoured).
int privileged_child() {
  std::printf("euid=%d\n", static_cast<int>(geteuid()));
  print_options();
  leakguard::set_leak_handler(leakguard::log_leak);
  {
    LEAKGUARD_SCOPE("setuid child");
    leakguard::allocator<char> a;
    char* volatile leaked = a.allocate(100);
    (void)leaked;
  }
  return 0;
}

// A setuid-root copy of this program, run by an unprivileged user with umask
// 000, must ignore LEAKGUARD_OPTIONS: it may neither append to a root-only
// file nor create a file where only root may.
void check_privileged(const char* self) {
  const passwd* nobody = getpwnam("nobody");
  if (geteuid() != 0 || !nobody || nobody->pw_uid == 0) {
    std::fputs("options_env_program: setuid check skipped: needs root and a user 'nobody'\n", stderr);
    return;
  }
  char dir_template[] = "/tmp/leakguard_setuid_XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  chmod(dir.c_str(), 0711);
  const std::string copy = dir + "/program", secret = dir + "/secret", locked = dir + "/locked";
  {
    std::ifstream in(self, std::ios::binary);
    std::ofstream out(copy, std::ios::binary);
    out << in.rdbuf();
  }
  chmod(copy.c_str(), 04755);  // owned by root: the test runs as root
  std::ofstream(secret) << "root only\n";
  chmod(secret.c_str(), 0600);
  mkdir(locked.c_str(), 0700);
  const std::string created = locked + "/created.log";

  for (const std::string& path : {secret, created}) {
    const std::string value = "on_leak=log:report_path=" + path;
    const child_output r = run_child(copy.c_str(), value.c_str(), "privileged", nobody);
    if (!contains(r.out, "euid=0")) {
      std::fprintf(stderr, "options_env_program: setuid check skipped: the setuid bit had no effect (%s)\n",
                   r.out.c_str());
      break;
    }
    CHECK_ENV(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, r.err.c_str());
    CHECK_ENV(contains(r.out, "report_path= "), r.out.c_str());
    CHECK_ENV(count(r.err, "LEAKGUARD_OPTIONS ignored: the process is privileged") == 1, r.err.c_str());
    CHECK_ENV(contains(r.err, "setuid child"), r.err.c_str());  // the report went to stderr
  }
  CHECK_ENV(read_file(secret) == "root only\n", read_file(secret).c_str());
  CHECK_ENV(access(created.c_str(), F_OK) != 0, "a privileged copy created a file LEAKGUARD_OPTIONS named");
  for (const std::string& path : {created, secret, copy, locked, dir}) remove(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "child") == 0) return print_options();
  if (argc > 1 && std::strcmp(argv[1], "privileged") == 0) return privileged_child();
  if (argc > 1 && std::strcmp(argv[1], "suppressions") == 0) return print_suppressions();
  const char* self = "/proc/self/exe";

  child_output r = run_child(self, nullptr);
  CHECK_ENV(contains(r.out, "stack_depth=16 on_leak=abort report=text report_path= sample_bytes=0 log_interval=60"),
            r.out.c_str());
  CHECK_ENV(r.err.empty(), r.err.c_str());

  r = run_child(self, "stack_depth=4:on_leak=log:report=json:report_path=/tmp/x.log:sample_bytes=4096:log_interval=5");
  CHECK_ENV(contains(r.out, "stack_depth=4 on_leak=log report=json report_path=/tmp/x.log sample_bytes=4096 log_interval=5"),
            r.out.c_str());
  CHECK_ENV(r.err.empty(), r.err.c_str());

  // A bad key and a bad value: one warning each, at start-up, the rest applies.
  r = run_child(self, "colour=red:stack_depth=999:on_leak=log");
  CHECK_ENV(contains(r.out, "stack_depth=16 on_leak=log"), r.out.c_str());
  CHECK_ENV(count(r.err, "colour") == 1, r.err.c_str());
  CHECK_ENV(count(r.err, "stack_depth=999") == 1, r.err.c_str());
  CHECK_ENV(count(r.err, "\n") == 2, r.err.c_str());
  CHECK_ENV(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "child exit status");

  // Garbage never crashes.
  r = run_child(self, ":::=:==:stack_depth=:on_leak:\x01\x02");
  CHECK_ENV(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, r.err.c_str());
  CHECK_ENV(contains(r.out, "stack_depth=16 on_leak=abort"), r.out.c_str());

  // suppressions=FILE is loaded at start-up; its bad lines are named there.
  char supp_template[] = "/tmp/leakguard_supp_XXXXXX";
  const int supp_fd = mkstemp(supp_template);
  const std::string supp = supp_template;
  const std::string supp_text = "# ours\nleak:mylib::cache::fill\nleak:*/vendored/*\nbogus line\n";
  CHECK_ENV(supp_fd >= 0 && write(supp_fd, supp_text.data(), supp_text.size()) == static_cast<ssize_t>(supp_text.size()),
            "writing the suppressions file");
  close(supp_fd);
  r = run_child(self, ("on_leak=log, suppressions = " + supp).c_str(), "suppressions");
  CHECK_ENV(contains(r.out, "pattern: mylib::cache::fill\n"), r.out.c_str());
  CHECK_ENV(contains(r.out, "pattern: /vendored/\n"), r.out.c_str());
  CHECK_ENV(count(r.err, "\n") == 1 && contains(r.err, (supp + ":4: not a leak:PATTERN line: 'bogus line'").c_str()),
            r.err.c_str());
  remove(supp.c_str());

  check_privileged(self);

  if (failures == 0) std::fputs("options_env_program: all checks passed\n", stderr);
  return failures;
}
