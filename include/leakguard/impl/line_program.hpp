// leakguard/impl/line_program.hpp — a compilation unit's file:line for one
// address, read from its DWARF line program without keeping the program's
// table.
//
// libdw's dwarf_getsrc_die and dwarf_getsrcfiles (elfutils 0.188) decode a
// unit's whole line program into memory and keep it: about 60 bytes a row,
// megabytes for a unit that holds much of a program (one that includes the
// runtime, a unity build), for as long as the process lives. Here the
// program is run over the mapped .debug_line: once, to note where each
// sequence (a run of contiguous code) starts, with the machine's state every
// 64 rows, then, for each address asked about (each return address is
// looked up once), over those rows only. What is kept is the unit's file
// names, 32 bytes a sequence and 40 bytes per 64 rows.
// Inside a sequence the row chosen is the one libdw chooses; outside every
// sequence (padding between functions: never a return address) there is
// no line.
//
// Line programs this reader does not know (a compressed section, a form it
// does not decode, a truncated header) make it return false; the caller
// then asks libdw.
#pragma once

#if LEAKGUARD_HAVE_LIBDW

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "sort.hpp"

namespace leakguard::detail {

// Bounds-checked reading of DWARF's encodings.
class dwarf_cursor {
 public:
  dwarf_cursor(const unsigned char* at, const unsigned char* end) noexcept : at_(at), end_(end) {}

  bool ok() const noexcept { return ok_; }
  bool at_end() const noexcept { return at_ >= end_; }
  const unsigned char* position() const noexcept { return at_; }
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - at_); }

  std::uint64_t fixed(std::size_t bytes) noexcept {  // little-endian (x86-64, AArch64)
    if (!need(bytes)) return 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes && i < 8; ++i) v |= std::uint64_t{at_[i]} << (8 * i);
    at_ += bytes;
    return v;
  }
  std::uint64_t uleb() noexcept {
    std::uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (!need(1)) return 0;
      const unsigned char b = *at_++;
      if (shift < 64) v |= std::uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
  }
  std::int64_t sleb() noexcept {
    std::int64_t v = 0;
    unsigned shift = 0;
    for (;;) {
      if (!need(1)) return 0;
      const unsigned char b = *at_++;
      if (shift < 64) v |= static_cast<std::int64_t>(std::uint64_t{b & 0x7fu} << shift);
      shift += 7;
      if (!(b & 0x80)) {
        if (shift < 64 && (b & 0x40)) v |= -(std::int64_t{1} << shift);
        return v;
      }
    }
  }
  std::string_view string() noexcept {
    const void* nul = ok_ ? std::memchr(at_, 0, left()) : nullptr;
    if (!nul) {
      ok_ = false;
      return {};
    }
    std::string_view s(reinterpret_cast<const char*>(at_),
                       static_cast<std::size_t>(static_cast<const unsigned char*>(nul) - at_));
    at_ += s.size() + 1;
    return s;
  }
  void skip(std::size_t bytes) noexcept {
    if (need(bytes)) at_ += bytes;
  }

 private:
  bool need(std::size_t bytes) noexcept {
    if (ok_ && left() >= bytes) return true;
    ok_ = false;
    return false;
  }
  const unsigned char* at_;
  const unsigned char* end_;
  bool ok_ = true;
};

// The raw bytes of one section of a module's debug file, or empty.
inline std::string_view section_bytes(Elf* elf, std::string_view wanted) noexcept {
  std::size_t names = 0;
  if (!elf || elf_getshdrstrndx(elf, &names) != 0) return {};
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf, scn)) != nullptr;) {
    GElf_Shdr header;
    if (!gelf_getshdr(scn, &header)) continue;
    const char* name = elf_strptr(elf, names, header.sh_name);
    if (!name || wanted != name) continue;
    if (header.sh_flags & SHF_COMPRESSED) return {};  // libdw decompresses it
    Elf_Data* data = elf_rawdata(scn, nullptr);
    if (!data || !data->d_buf) return {};
    return {static_cast<const char*>(data->d_buf), data->d_size};
  }
  return {};
}

// One row of a line program's table.
struct line_row {
  std::uint64_t address;
  std::uint64_t file;
  std::int64_t line;
  bool ends;  // DW_LNE_end_sequence: the first address after the sequence
};
inline constexpr line_row sequence_start{0, 1, 1, false};

class line_programs {
 public:
  // The file:line of unit `cu` at `rel` (an address in the unit's terms).
  // False when this reader cannot tell; true with an empty file when no
  // sequence of the program covers `rel`.
  bool line_at(Dwarf_Die* cu, Dwarf_Addr rel, std::string& file, int& line) {
    unit* u = unit_of(cu);
    if (!u) return false;
    if (!u->indexed) {
      u->indexed = true;
      u->usable = index_sequences(*u);
      if (!u->usable) return false;
    }
    file.clear();
    line = 0;
    auto after = std::upper_bound(u->sequences.begin(), u->sequences.end(), rel,
                                  [](Dwarf_Addr a, const sequence& s) { return a < s.low; });
    if (after == u->sequences.begin() || rel >= (after - 1)->high) return true;
    // Within the sequence, whose addresses only grow (DWARF 5, 6.2.5):
    // the last row at the greatest address not above `rel` (libdw's choice
    // too), run from the last checkpoint before it.
    const sequence& seq = *(after - 1);
    const auto first = u->checkpoints.begin() + seq.first_checkpoint;
    const auto from = std::upper_bound(first, first + seq.checkpoint_count, rel,
                                       [](Dwarf_Addr a, const checkpoint& c) { return a < c.row.address; });
    line_row best{};
    bool found = from != first;
    if (found) best = (from - 1)->row;
    const unsigned char* program = found ? (from - 1)->next : seq.program;
    const bool ok = run(*u, program, found ? best : sequence_start, [&](const line_row& r, const unsigned char*) {
      if (r.ends || r.address > rel) return false;
      best = r;
      found = true;
      return true;
    });
    if (!ok) return false;
    if (found) {
      if (best.file < u->files.size()) file = u->files[best.file];
      line = static_cast<int>(best.line);
    }
    return true;
  }

  // The name of file `index` of unit `cu` (DW_AT_call_file), or null.
  const char* file_name(Dwarf_Die* cu, std::uint64_t index) {
    const unit* u = unit_of(cu);
    return u && index < u->files.size() ? u->files[index].c_str() : nullptr;
  }

  void clear() { units_.clear(); }

 private:
  struct sequence {
    std::uint64_t low, high;       // the addresses it covers
    const unsigned char* program;  // its first opcode
    std::uint32_t first_checkpoint, checkpoint_count;
  };
  // The state after one row in every `checkpoint_rows` of a sequence, so
  // that a lookup runs at most that many rows.
  struct checkpoint {
    line_row row;
    const unsigned char* next;  // the opcode after it
  };
  static constexpr std::uint32_t checkpoint_rows = 64;
  struct unit {
    const unsigned char* program = nullptr;  // the opcodes, in the mapped section
    const unsigned char* end = nullptr;
    unsigned min_instruction_length = 1, line_range = 1, opcode_base = 1;
    int line_base = 0;
    // What each special opcode (opcode_base and above) adds to the address
    // and to the line: most of a program's bytes are special opcodes.
    struct advance {
      std::uint32_t address = 0;
      std::int32_t line = 0;
    };
    std::array<advance, 256> special{};
    std::vector<unsigned char> operand_counts;  // of standard opcodes 1 .. opcode_base-1
    std::vector<std::string> files;            // by the program's file number
    std::vector<sequence> sequences;           // by address, made on the first lookup
    std::vector<checkpoint> checkpoints;       // by sequence, then address
    bool indexed = false;                      // `sequences` was made
    bool usable = false;                       // the header, then the program, could be read
  };

  // Runs the line program from `from`, with the state machine's registers
  // as `state` left them (a sequence starts from {0, 1, 1}), calling
  // `row(r, after)` for each row until it returns false; `after` is where
  // the next opcode starts. False if the program is malformed.
  template <class F>
  static bool run(const unit& u, const unsigned char* from, line_row state, F&& row) {
    // The registers of the state machine (DWARF 5, 6.2.2) that rows need.
    std::uint64_t address = state.address, file = state.file;
    std::int64_t line = state.line;
    for (const unsigned char* at = from; at < u.end;) {
      const unsigned op = *at++;
      if (op >= u.opcode_base) {  // a special opcode: one byte, one row
        address += u.special[op].address;
        line += u.special[op].line;
        if (!row(line_row{address, file, line, false}, at)) return true;
        continue;
      }
      dwarf_cursor in(at, u.end);
      switch (op) {
        case 0: {  // extended
          const std::uint64_t length = in.uleb();
          if (length == 0 || length > in.left()) return false;
          const unsigned char* next = in.position() + length;
          const unsigned sub = static_cast<unsigned>(in.fixed(1));
          if (sub == DW_LNE_end_sequence) {
            if (!row(line_row{address, file, line, true}, next)) return true;
            address = 0;
            file = 1;
            line = 1;
          } else if (sub == DW_LNE_set_address) {
            address = in.fixed(length - 1);
          }
          in = dwarf_cursor(next, u.end);  // define_file, set_discriminator, vendor ops: skipped
          break;
        }
        case DW_LNS_copy:
          if (!row(line_row{address, file, line, false}, in.position())) return true;
          break;
        case DW_LNS_advance_pc: address += in.uleb() * u.min_instruction_length; break;
        case DW_LNS_advance_line: line += in.sleb(); break;
        case DW_LNS_set_file: file = in.uleb(); break;
        case DW_LNS_const_add_pc: address += ((255 - u.opcode_base) / u.line_range) * u.min_instruction_length; break;
        case DW_LNS_fixed_advance_pc: address += in.fixed(2); break;
        case DW_LNS_negate_stmt:  // frequent, and without operands
        case DW_LNS_set_basic_block:
        case DW_LNS_set_prologue_end:
        case DW_LNS_set_epilogue_begin: break;
        default:  // other standard opcodes: skip their operands
          for (unsigned n = op - 1 < u.operand_counts.size() ? u.operand_counts[op - 1] : 0; n > 0; --n) in.uleb();
          break;
      }
      if (!in.ok()) return false;
      at = in.position();
    }
    return true;
  }

  // One pass over the whole program: where each sequence starts and what
  // it covers, so that a lookup runs one sequence only.
  static bool index_sequences(unit& u) {
    const unsigned char* start = u.program;
    std::uint64_t low = 0;
    std::uint32_t rows = 0;       // of the sequence being run
    std::size_t first_checkpoint = 0;  // its first
    const bool ok = run(u, u.program, sequence_start, [&](const line_row& r, const unsigned char* after) LEAKGUARD_LAMBDA_INLINE {
      if (rows == 0) low = r.address;
      if (!r.ends) {
        if (++rows % checkpoint_rows == 0) u.checkpoints.push_back({r, after});
        return true;
      }
      if (low < r.address)
        u.sequences.push_back({low, r.address, start, static_cast<std::uint32_t>(first_checkpoint),
                               static_cast<std::uint32_t>(u.checkpoints.size() - first_checkpoint)});
      else
        u.checkpoints.resize(first_checkpoint);
      first_checkpoint = u.checkpoints.size();
      rows = 0;
      start = after;
      return true;
    });
    sort_by(u.sequences, [](const sequence& s) { return s.low; });
    return ok;
  }

  unit* unit_of(Dwarf_Die* cu) {
    Dwarf_Attribute attr;
    Dwarf_Word offset = 0;
    if (dwarf_formudata(dwarf_attr(cu, DW_AT_stmt_list, &attr), &offset) != 0) return nullptr;
    Dwarf* dwarf = dwarf_cu_getdwarf(cu->cu);
    auto [it, made] = units_.try_emplace({dwarf, offset});
    if (made) it->second = read_header(dwarf, cu, offset);
    return it->second.usable ? &it->second : nullptr;
  }

  static unit read_header(Dwarf* dwarf, Dwarf_Die* cu, Dwarf_Word offset) {
    unit u;
    Elf* elf = dwarf_getelf(dwarf);
    const std::string_view section = section_bytes(elf, ".debug_line");
    if (offset >= section.size()) return u;
    const auto* base = reinterpret_cast<const unsigned char*>(section.data());
    dwarf_cursor in(base + offset, base + section.size());
    std::uint64_t length = in.fixed(4);
    std::size_t offset_size = 4;
    if (length == 0xffffffff) {
      length = in.fixed(8);
      offset_size = 8;
    }
    if (!in.ok() || length > in.left()) return u;
    const unsigned char* unit_end = in.position() + length;
    in = dwarf_cursor(in.position(), unit_end);
    const unsigned version = static_cast<unsigned>(in.fixed(2));
    if (version < 2 || version > 5) return u;
    if (version >= 5) in.skip(2);  // address and segment selector sizes
    const std::uint64_t header_length = in.fixed(offset_size);
    if (!in.ok() || header_length > in.left()) return u;
    u.program = in.position() + header_length;
    u.end = unit_end;
    u.min_instruction_length = static_cast<unsigned>(in.fixed(1));
    if (version >= 4) in.fixed(1);  // maximum operations per instruction: 1 on every target we run on
    in.fixed(1);                    // default is_stmt
    u.line_base = static_cast<signed char>(in.fixed(1));
    u.line_range = static_cast<unsigned>(in.fixed(1));
    u.opcode_base = static_cast<unsigned>(in.fixed(1));
    if (!in.ok() || u.line_range == 0 || u.opcode_base == 0) return u;
    for (unsigned op = u.opcode_base; op < u.special.size(); ++op) {
      const unsigned adjusted = op - u.opcode_base;
      u.special[op] = {(adjusted / u.line_range) * u.min_instruction_length,
                       u.line_base + static_cast<int>(adjusted % u.line_range)};
    }
    for (unsigned i = 1; i < u.opcode_base; ++i) u.operand_counts.push_back(static_cast<unsigned char>(in.fixed(1)));

    Dwarf_Attribute attr;
    const char* comp_dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr));
    std::vector<std::string> dirs;
    // Paths as libdw spells them: a relative name after its directory as
    // written (directory 0 of DWARF 2-4 is the unit's DW_AT_comp_dir).
    auto join = [&](std::string_view dir, std::string_view name) {
      if (name.starts_with('/') || dir.empty()) return std::string(name);
      std::string path(dir);
      path += '/';
      path += name;
      return path;
    };
    if (version < 5) {
      dirs.emplace_back(comp_dir ? comp_dir : "");
      for (std::string_view d; in.ok() && !(d = in.string()).empty();) dirs.emplace_back(d);
      u.files.emplace_back();  // file numbers start at 1
      for (std::string_view name; in.ok() && !(name = in.string()).empty();) {
        const std::uint64_t dir = in.uleb();
        in.uleb();  // modification time
        in.uleb();  // length
        u.files.push_back(join(dir < dirs.size() ? dirs[dir] : std::string_view{}, name));
      }
    } else {
      const std::string_view line_str = section_bytes(elf, ".debug_line_str");
      const std::string_view str = section_bytes(elf, ".debug_str");
      // One entry of a v5 directory or file table: its path and directory.
      auto entries = [&](auto&& take) {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> format;  // (content type, form)
        for (unsigned n = static_cast<unsigned>(in.fixed(1)); n > 0 && in.ok(); --n) {
          const std::uint64_t type = in.uleb();  // two statements: argument order is unspecified
          format.emplace_back(type, in.uleb());
        }
        for (std::uint64_t count = in.uleb(); count > 0 && in.ok(); --count) {
          std::string_view path;
          std::uint64_t dir = 0;
          for (auto [type, form] : format) {
            std::string_view text;
            std::uint64_t value = 0;
            switch (form) {
              case DW_FORM_string: text = in.string(); break;
              case DW_FORM_line_strp:
              case DW_FORM_strp: {
                const std::string_view strings = form == DW_FORM_line_strp ? line_str : str;
                const std::uint64_t at = in.fixed(offset_size);
                if (at >= strings.size()) return false;
                text = strings.data() + at;  // NUL-terminated within the section
                break;
              }
              case DW_FORM_udata: value = in.uleb(); break;
              case DW_FORM_data1: value = in.fixed(1); break;
              case DW_FORM_data2: value = in.fixed(2); break;
              case DW_FORM_data4: value = in.fixed(4); break;
              case DW_FORM_data8: value = in.fixed(8); break;
              case DW_FORM_data16: in.skip(16); break;
              case DW_FORM_block: in.skip(in.uleb()); break;
              default: return false;  // strx and the like: libdw reads them
            }
            if (type == DW_LNCT_path) path = text;
            else if (type == DW_LNCT_directory_index) dir = value;
          }
          take(path, dir);
        }
        return in.ok();
      };
      if (!entries([&](std::string_view path, std::uint64_t) { dirs.emplace_back(path); })) return u;
      if (!entries([&](std::string_view path, std::uint64_t dir) {
            u.files.push_back(join(dir < dirs.size() ? dirs[dir] : std::string_view{}, path));
          }))
        return u;
    }
    u.usable = in.ok() && u.program <= u.end;
    return u;
  }

  std::map<std::pair<Dwarf*, Dwarf_Word>, unit> units_;
};

}  // namespace leakguard::detail

#endif  // LEAKGUARD_HAVE_LIBDW
