// The second TU with leakguard's runtime (global_new.hpp includes it).
#include <leakguard/global_new.hpp>

int main() { return 0; }
