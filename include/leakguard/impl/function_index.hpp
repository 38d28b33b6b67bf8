// leakguard/impl/function_index.hpp — a compilation unit's functions by
// address, and the namespaces and classes that qualify their names, without
// walking the unit for every lookup.
//
// A C++ unit's top level holds every type and declaration its file
// included: tens of thousands of DIEs, most of them members of classes.
// Each unit is walked once, when an address in it is first looked up, into
// a table of its functions' code ranges and one of its namespaces', classes'
// and functions' extents. Compilers put the code of functions at the top
// level and in namespaces, never in a class (a member's definition refers
// to its declaration there), so the walk steps over each class whole; the
// DIEs of a class or a function are walked only to qualify a name declared
// inside it.
#pragma once

#if LEAKGUARD_HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdw.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sort.hpp"

namespace leakguard::detail {

// A piece of code and the DIE it belongs to (a unit, a function).
struct die_range {
  Dwarf_Addr low, high;
  Dwarf_Die die;
};

// Sorts `table` for die_at().
inline void sort_ranges(std::vector<die_range>& table) {
  sort_by(table, [](const die_range& r) { return r.low; });
}

// The DIE of the sorted `table` whose range holds `at`.
inline bool die_at(const std::vector<die_range>& table, Dwarf_Addr at, Dwarf_Die& die) {
  auto after = std::upper_bound(table.begin(), table.end(), at,
                                [](Dwarf_Addr a, const die_range& r) { return a < r.low; });
  for (auto r = after; r != table.begin();) {
    --r;
    if (at < r->high) {
      die = r->die;
      return true;
    }
    if (after - r > 8) break;  // ranges rarely nest deeper than that
  }
  return false;
}

class function_index {
 public:
  // The function (a DW_TAG_subprogram with code, at the unit's top level or
  // in its namespaces) whose code holds `rel`, an address in the unit's
  // terms.
  bool function_at(Dwarf_Die* cu, Dwarf_Addr rel, Dwarf_Die& function) {
    return die_at(unit_of(cu).functions, rel, function);
  }

  // "ns::cls::" for a DIE of unit `cu` declared in namespace `ns`, class
  // `cls`: up to the unit, or to the first unnamed class; for one declared
  // inside a function (a local class's member, a lambda's call operator),
  // its classes up to that function. Nothing if the DIE cannot be found.
  std::optional<std::string> qualifier(Dwarf_Die* cu, Dwarf_Die* die) {
    const unit& u = unit_of(cu);
    const Dwarf_Off at = dwarf_dieoffset(die);
    auto after = std::upper_bound(u.scopes.begin(), u.scopes.end(), at,
                                  [](Dwarf_Off a, const scope& s) { return a < s.begin; });
    std::uint32_t i = after == u.scopes.begin() ? none : static_cast<std::uint32_t>(after - u.scopes.begin() - 1);
    while (i != none && !(at > u.scopes[i].begin && at < u.scopes[i].end)) i = u.scopes[i].parent;
    std::string out;
    if (i != none && u.scopes[i].kind != scope_kind::space) {  // not walked: walk this class's or function's DIEs to it
      Dwarf_Die outer;
      std::vector<Dwarf_Die> path;
      if (!dwarf_offdie(dwarf_cu_getdwarf(cu->cu), u.scopes[i].begin, &outer) || !path_to(&outer, at, path))
        return std::nullopt;
      for (auto p = path.rbegin() + 1; p != path.rend(); ++p) {  // from the DIE's parent outwards
        const int tag = dwarf_tag(&*p);
        const char* name = dwarf_diename(&*p);
        if (is_class(tag) && name) out.insert(0, std::string(name) + "::");
        else if (tag != DW_TAG_lexical_block) return out;  // declared in a function's own scope
      }
      if (u.scopes[i].kind == scope_kind::function) return out;
    }
    for (; i != none && u.scopes[i].name; i = u.scopes[i].parent) out.insert(0, std::string(u.scopes[i].name) + "::");
    return out;
  }

  // Whether unit `cu` was walked (a lookup in it is cheap).
  bool has(Dwarf_Die* cu) const { return units_.contains(cu->cu); }

  // Modules were loaded or unloaded: units may be gone.
  void clear() { units_.clear(); }

 private:
  static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();

  // A namespace (whose DIEs are walked), class or function (whose DIEs
  // are not): its DIE's offset, and where its children end.
  enum class scope_kind : std::uint8_t { space, type, function };
  struct scope {
    Dwarf_Off begin, end;
    std::uint32_t parent;
    const char* name;  // in the unit's string table; null for an unnamed class or a function
    scope_kind kind;
  };

  static bool is_class(int tag) {
    return tag == DW_TAG_class_type || tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
  }
  struct unit {
    std::vector<die_range> functions;  // by address
    std::vector<scope> scopes;     // in DIE order, so by offset
  };

  const unit& unit_of(Dwarf_Die* cu) {
    auto [it, made] = units_.try_emplace(cu->cu);
    if (!made) return it->second;
    try {
      unit& u = it->second;
      walk(cu, none, u);
      for (scope& s : u.scopes)  // a last child ends where its parent does
        if (!s.end) s.end = s.parent == none ? std::numeric_limits<Dwarf_Off>::max() : u.scopes[s.parent].end;
      sort_ranges(u.functions);
      return u;
    } catch (...) {
      units_.erase(it);
      throw;
    }
  }

  // Appends the DIEs from `parent`'s child down to the one at `target`,
  // descending only into the child whose extent holds it.
  static bool path_to(Dwarf_Die* parent, Dwarf_Off target, std::vector<Dwarf_Die>& path) {
    Dwarf_Die child, next;
    if (dwarf_child(parent, &child) != 0) return false;
    for (;;) {
      const Dwarf_Off at = dwarf_dieoffset(&child);
      if (at == target) {
        path.push_back(child);
        return true;
      }
      if (at > target) return false;
      const bool last = dwarf_siblingof(&child, &next) != 0;
      if (last || dwarf_dieoffset(&next) > target) {
        path.push_back(child);
        if (path_to(&child, target, path)) return true;
        path.pop_back();
        return false;
      }
      child = next;
    }
  }

  static void walk(Dwarf_Die* parent, std::uint32_t parent_scope, unit& u) {
    Dwarf_Die child;
    if (dwarf_child(parent, &child) != 0) return;
    for (;;) {
      const int tag = dwarf_tag(&child);
      std::uint32_t opened = none;
      if (tag == DW_TAG_namespace) {
        const char* name = dwarf_diename(&child);
        opened = static_cast<std::uint32_t>(u.scopes.size());
        u.scopes.push_back({dwarf_dieoffset(&child), 0, parent_scope, name ? name : "(anonymous namespace)",
                            scope_kind::space});
        walk(&child, opened, u);
      } else if (is_class(tag)) {
        if (dwarf_haschildren(&child) == 1) {
          opened = static_cast<std::uint32_t>(u.scopes.size());
          u.scopes.push_back({dwarf_dieoffset(&child), 0, parent_scope, dwarf_diename(&child), scope_kind::type});
        }
      } else if (tag == DW_TAG_subprogram) {
        // Most are declarations: asking for their ranges would read all
        // their attributes.
        if (dwarf_hasattr(&child, DW_AT_low_pc) || dwarf_hasattr(&child, DW_AT_ranges)) {
          Dwarf_Addr base, low, high;
          for (std::ptrdiff_t off = 0; (off = dwarf_ranges(&child, off, &base, &low, &high)) > 0;)
            if (low < high) u.functions.push_back({low, high, child});
        }
        if (dwarf_haschildren(&child) == 1) {
          opened = static_cast<std::uint32_t>(u.scopes.size());
          u.scopes.push_back({dwarf_dieoffset(&child), 0, parent_scope, nullptr, scope_kind::function});
        }
      }
      if (dwarf_siblingof(&child, &child) != 0) return;
      if (opened != none) u.scopes[opened].end = dwarf_dieoffset(&child);
    }
  }

  std::unordered_map<Dwarf_CU*, unit> units_;
};

}  // namespace leakguard::detail
#endif
