// The names reports show and suppressions match: qualified_name() on real
// demangled names (from g++ 12's and c++filt's output) and on garbage, and
// where a suppression pattern may start in a name.
#include <doctest/doctest.h>
#include <leakguard/impl/frame_kind.hpp>
#include <leakguard/impl/suppressions.hpp>

#include <string>

namespace {

struct named {
  const char* demangled;
  const char* shown;
};

// Each from a real symbol: templates print their return type, lambdas and
// locals their enclosing function, conversions their target type.
constexpr named names[] = {
    {"use()", "use"},
    {"void ns::apply<void (*)(int)>(void (*)(int), int)", "ns::apply<void (*)(int)>"},
    {"decltype (({parm#1}.begin)()) ns::first<std::vector<int, std::allocator<int> > >(std::vector<int, std::allocator<int> > const&)", "ns::first<std::vector<int, std::allocator<int> > >"},
    {"ns::make_name[abi:cxx11](int)", "ns::make_name[abi:cxx11]"},
    {"ns::operator<<(std::ostream&, ns::widget const&)", "ns::operator<<"},
    {"ns::box<int, 3>::get(std::function<int (int)>) const", "ns::box<int, 3>::get"},
    {"ns::widget::operator bool() const", "ns::widget::operator bool"},
    {"ns::widget::operator<(ns::widget const&) const", "ns::widget::operator<"},
    {"use()::{lambda(int)#2}::operator()(int) const", "use()::{lambda(int)#2}::operator()"},
    {"ns::run(int)::{lambda(int)#1}::operator()(int) const", "ns::run(int)::{lambda(int)#1}::operator()"},
    {"use()::{lambda(int)#1}::operator void (*)(int)() const", "use()::{lambda(int)#1}::operator void (*)(int)"},
    {"std::_Function_handler<int (int), use()::{lambda(int)#2}>::_M_invoke(std::_Any_data const&, int&&)", "std::_Function_handler<int (int), use()::{lambda(int)#2}>::_M_invoke"},
    {"use()::{lambda(int)#2}& std::_Any_data::_M_access<use()::{lambda(int)#2}>()", "std::_Any_data::_M_access<use()::{lambda(int)#2}>"},
    {"void (*ns::tf<int>(int))(double)", "ns::tf<int>"},
    {"operator new(unsigned long)", "operator new"},
    {"operator delete[](void*, unsigned long)", "operator delete[]"},
    {"ns::f(int) [clone .cold]", "ns::f"},
    {"make_widget", "make_widget"},
    {"(anonymous namespace)::make_widget(char const*)", "(anonymous namespace)::make_widget"},
    {"decltype(auto) ns::g<int>()", "ns::g<int>"},
    {"foo()::bar", "foo()::bar"},
    {"bool std::operator< <char>(std::basic_string<char> const&, char const*)", "std::operator< <char>"},
    {"operator()", "operator()"},
    {"main", "main"},
    {"", ""},
    {"(", ""},
    {"f(", "f"},
    {"(*", ""},
    {"void (*)(int)", "(*)"},
};

}  // namespace

TEST_CASE("qualified_name: return types, parameters and qualifiers go, lambdas, operators and templates stay whole") {
  for (const named& n : names) {
    INFO(n.demangled);
    CHECK(std::string(leakguard::detail::qualified_name(n.demangled)) == n.shown);
  }
}

TEST_CASE("qualified_name: a real decltype return type (nlohmann::json's from_json)") {
  const std::string demangled =
      "decltype (({parm#2}.begin)()) nlohmann::detail::from_json<nlohmann::basic_json<std::map, std::vector, "
      "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, bool, long, unsigned long, "
      "double, std::allocator, nlohmann::adl_serializer, std::vector<unsigned char, std::allocator<unsigned char> > "
      ">, std::vector<int, std::allocator<int> > >(nlohmann::basic_json<std::map> const&, std::vector<int, "
      "std::allocator<int> >&)";
  const std::string shown(leakguard::detail::qualified_name(demangled));
  CHECK(shown.starts_with("nlohmann::detail::from_json<nlohmann::basic_json<std::map, "));
  CHECK(shown.ends_with(", std::vector<int, std::allocator<int> > >"));
}

TEST_CASE("qualified_name: the library and internal frame rules see through return types") {
  using leakguard::detail::is_internal_frame;
  using leakguard::detail::is_library_frame;
  CHECK(is_library_frame("decltype (({parm#1}.begin)()) std::begin<std::vector<int> >(std::vector<int>&)", ""));
  CHECK(is_library_frame("std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>(int const&)", ""));
  CHECK_FALSE(is_library_frame("decltype (({parm#1}.begin)()) ns::first<std::vector<int> >(std::vector<int> const&)", ""));
  CHECK(is_internal_frame("void* leakguard::detail::allocate<false>(unsigned long)", ""));
  CHECK_FALSE(is_internal_frame("void ns::apply<leakguard::scope>(leakguard::scope&)", ""));
}

TEST_CASE("names_only_the_library: standard library functions instantiated with its own and built-in types") {
  using leakguard::detail::names_only_the_library;
  // Real symbol names (g++ 12, libstdc++ 12), as the symbol table gives them.
  for (const char* library : {
           "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >::basic_string(char const*, std::allocator<char> const&)",
           "void std::vector<std::string, std::allocator<std::string > >::_M_range_initialize<std::string const*>(std::string const*, std::string const*, std::forward_iterator_tag)",
           "std::pair<std::__detail::_Node_iterator<unsigned long long, true, false>, bool> std::_Hashtable<unsigned long long, unsigned long long, std::allocator<unsigned long long>, std::__detail::_Identity, std::equal_to<unsigned long long>, std::hash<unsigned long long>, std::__detail::_Mod_range_hashing, std::__detail::_Default_ranged_hash, std::__detail::_Prime_rehash_policy, std::__detail::_Hashtable_traits<false, true, true> >::_M_insert<unsigned long long const&, std::__detail::_AllocNode<std::allocator<std::__detail::_Hash_node<unsigned long long, false> > > >(unsigned long long const&, std::__detail::_AllocNode<std::allocator<std::__detail::_Hash_node<unsigned long long, false> > > const&, std::integral_constant<bool, true>)",
           "std::vector<int, std::allocator<int> >::operator=(std::vector<int, std::allocator<int> > const&)",
           "void std::sort<long*>(long*, long*)",
           "std::vector<std::string, std::allocator<std::string > >::vector(std::initializer_list<std::string >, std::allocator<std::string > const&) [clone .isra.0]",
           "std::_Sp_counted_ptr_inplace<std::string, std::allocator<void>, (__gnu_cxx::_Lock_policy)2>::_M_dispose()",
           "std::array<char, 16ul>::fill(char const&)",
           "__gnu_cxx::__normal_iterator<int*, std::vector<int, std::allocator<int> > >::operator++()",
           "std::__detail::_Prime_rehash_policy::_M_next_bkt [clone .cold]",  // a clone's suffix, no parameters
       }) {
    CAPTURE(library);
    CHECK(names_only_the_library(library));
  }
  for (const char* not_only : {
           "std::_Function_handler<std::any (std::string const&), DOCTEST_ANON_FUNC_2()::{lambda(std::string const&)#1}>::_M_invoke(std::_Any_data const&, std::string const&)",
           "void std::vector<YAML::Node, std::allocator<YAML::Node> >::_M_realloc_insert<YAML::Node const&>(__gnu_cxx::__normal_iterator<YAML::Node*, std::vector<YAML::Node, std::allocator<YAML::Node> > >, YAML::Node const&)",
           "std::_Sp_counted_ptr_inplace<(anonymous namespace)::widget, std::allocator<void>, (__gnu_cxx::_Lock_policy)2>::_M_dispose()",
           "std::thread::_State_impl<std::thread::_Invoker<std::tuple<main::{lambda()#1}> > >::_M_run()",
           "std::unique_ptr<ns::cache, std::default_delete<ns::cache> > std::make_unique<ns::cache>()",
           "void std::sort<long*, bool (*)(long, long)>(long*, long*, bool (*)(long, long))",
           "void std::sort<long*, bool (*)(long, long)>(long*, long*, bool (*)(long, long)) [clone .constprop.0]",
           "std::vector<int, std::allocator<int> > ns::make_vector(int)",
           "stdx::vector<int>::push_back(int const&)",
           "ns::f(std::string const&)",
           "",
       }) {
    CAPTURE(not_only);
    CHECK_FALSE(names_only_the_library(not_only));
  }
}

TEST_CASE("suppression patterns start at a name boundary, or right after an anonymous namespace") {
  using leakguard::detail::pattern_matches;
  CHECK(pattern_matches("doctest::detail::Subcase::Subcase(doctest::String const&)", "doctest::"));
  CHECK(pattern_matches("void mylib::fill<int>(int)", "mylib::"));  // after the return type
  CHECK(pattern_matches("std::vector<mylib::node>::push_back(mylib::node&&)", "mylib::"));  // after '<'
  CHECK_FALSE(pattern_matches("mydoctest::run()", "doctest::"));
  CHECK_FALSE(pattern_matches("foo::doctest::run()", "doctest::"));
  CHECK_FALSE(pattern_matches("precache_fill()", "cache_fill"));
  // clang's linkage names spell the anonymous namespace out; g++'s DWARF names do not.
  CHECK(pattern_matches("(anonymous namespace)::cache_fill()", "cache_fill"));
  CHECK(pattern_matches("app::(anonymous namespace)::cache_fill()", "cache_fill"));
  CHECK(pattern_matches("app::(anonymous namespace)::cache_fill()", "app::"));
  CHECK_FALSE(pattern_matches("anything", ""));
}
