// leakguard's runtime and its replacement operator new/delete, in a .cpp of
// their own as the README advises: compiled once, linked into the server
// examples (http_server, request_loop, thread_pool_server). The other
// examples show the one-file setup: <leakguard/global_new.hpp> in the file
// with main.
#include <leakguard/global_new.hpp>
