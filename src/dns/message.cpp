#include "dns/message.h"

#include <cstdio>
#include <unordered_map>

namespace trellis::dns {

namespace {

constexpr size_t kMaxNameWire = 255;
// Every pointer must point strictly backwards, which already rules out loops; the cap bounds the
// work a hostile message can ask for (a legitimate name needs at most one jump per label).
constexpr int kMaxPointerJumps = 127;

char asciiLower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool labelEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  return true;
}

class Reader {
 public:
  explicit Reader(std::string_view wire) : wire_(wire) {}

  size_t pos() const { return pos_; }
  size_t size() const { return wire_.size(); }
  const std::string& error() const { return error_; }

  bool fail(std::string reason) {
    if (error_.empty()) error_ = std::move(reason) + " at offset " + std::to_string(pos_);
    return false;
  }
  bool u8(uint8_t& out) {
    if (wire_.size() - pos_ < 1) return fail("message ends early");
    out = uint8_t(wire_[pos_++]);
    return true;
  }
  bool u16(uint16_t& out) {
    if (wire_.size() - pos_ < 2) return fail("message ends early");
    out = uint16_t(uint8_t(wire_[pos_]) << 8 | uint8_t(wire_[pos_ + 1]));
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& out) {
    uint16_t high = 0, low = 0;
    if (!u16(high) || !u16(low)) return false;
    out = uint32_t(high) << 16 | low;
    return true;
  }
  bool bytes(size_t n, std::string& out) {
    if (wire_.size() - pos_ < n) return fail("message ends early");
    out.assign(wire_.substr(pos_, n));
    pos_ += n;
    return true;
  }

  // Reads the name at pos_, following compression pointers; pos_ ends after its in-place part.
  bool name(Name& out) {
    out.labels.clear();
    size_t cursor = pos_;
    size_t wireLength = 1;  // the root label
    bool jumped = false;
    int jumps = 0;
    while (true) {
      if (cursor >= wire_.size()) return fail("name runs past the end");
      uint8_t length = uint8_t(wire_[cursor]);
      if ((length & 0xC0) == 0xC0) {
        if (cursor + 1 >= wire_.size()) return fail("compression pointer runs past the end");
        size_t target = size_t(length & 0x3F) << 8 | uint8_t(wire_[cursor + 1]);
        if (target < kHeaderSize || target >= cursor) return fail("compression pointer does not point backwards");
        if (++jumps > kMaxPointerJumps) return fail("too many compression pointers");
        if (!jumped) pos_ = cursor + 2;
        jumped = true;
        cursor = target;
        continue;
      }
      if (length & 0xC0) return fail("unsupported label type");
      if (length == 0) {
        if (!jumped) pos_ = cursor + 1;
        return true;
      }
      if (wire_.size() - cursor - 1 < length) return fail("label runs past the end");
      wireLength += 1 + length;
      if (wireLength > kMaxNameWire) return fail("name longer than 255 bytes");
      out.labels.emplace_back(wire_.substr(cursor + 1, length));
      cursor += 1 + length;
    }
  }

 private:
  std::string_view wire_;
  size_t pos_ = 0;
  std::string error_;
};

enum class Section { Answer, Authority, Additional };

bool readRecord(Reader& in, Section section, Message& message) {
  Record record;
  uint16_t rdLength = 0;
  if (!in.name(record.name) || !in.u16(record.type) || !in.u16(record.klass) || !in.u32(record.ttl) ||
      !in.u16(rdLength))
    return false;
  if (in.size() - in.pos() < rdLength) return in.fail("RDATA runs past the end");
  const size_t end = in.pos() + rdLength;

  if (record.type == type::OPT) {
    if (section != Section::Additional) return in.fail("OPT record outside the additional section");
    if (message.edns) return in.fail("more than one OPT record");
    if (!record.name.labels.empty()) return in.fail("OPT record not owned by the root");
    Edns edns;
    edns.udpSize = record.klass;
    edns.version = uint8_t(record.ttl >> 16);
    edns.flags = uint16_t(record.ttl);
    if (!in.bytes(rdLength, edns.options)) return false;
    for (size_t at = 0; at < edns.options.size();) {
      if (edns.options.size() - at < 4) return in.fail("truncated EDNS option");
      size_t length = size_t(uint8_t(edns.options[at + 2])) << 8 | uint8_t(edns.options[at + 3]);
      if (edns.options.size() - at - 4 < length) return in.fail("EDNS option runs past the OPT record");
      at += 4 + length;
    }
    message.rcode = uint16_t(message.rcode | (record.ttl >> 24) << 4);
    message.edns = std::move(edns);
    return true;
  }

  switch (record.type) {
    case type::NS:
    case type::CNAME:
    case type::PTR: {
      Name target;
      if (!in.name(target)) return false;
      record.data = std::move(target);
      break;
    }
    case type::SOA: {
      Soa soa;
      if (!in.name(soa.mname) || !in.name(soa.rname) || !in.u32(soa.serial) || !in.u32(soa.refresh) ||
          !in.u32(soa.retry) || !in.u32(soa.expire) || !in.u32(soa.minimum))
        return false;
      record.data = std::move(soa);
      break;
    }
    default: {
      if (record.klass == kClassIn && ((record.type == type::A && rdLength != 4) ||
                                       (record.type == type::AAAA && rdLength != 16)))
        return in.fail("address RDATA of the wrong length");
      std::string raw;
      if (!in.bytes(rdLength, raw)) return false;
      record.data = std::move(raw);
    }
  }
  if (in.pos() != end) return in.fail("RDATA length does not match its content");

  auto& list = section == Section::Answer      ? message.answers
               : section == Section::Authority ? message.authority
                                               : message.additional;
  list.push_back(std::move(record));
  return true;
}

class Writer {
 public:
  std::string& out() { return out_; }

  void u8(uint8_t v) { out_.push_back(char(v)); }
  void u16(uint16_t v) {
    out_.push_back(char(v >> 8));
    out_.push_back(char(v));
  }
  void u32(uint32_t v) {
    u16(uint16_t(v >> 16));
    u16(uint16_t(v));
  }
  void patch16(size_t at, uint16_t v) {
    out_[at] = char(v >> 8);
    out_[at + 1] = char(v);
  }

  // Writes `name`, pointing at an earlier copy of its longest already-written suffix. Suffixes match
  // byte for byte, so a name always reads back exactly as given (case included).
  void name(const Name& name) {
    for (size_t i = 0; i < name.labels.size(); ++i) {
      std::string key;
      for (size_t j = i; j < name.labels.size(); ++j) {
        key.push_back(char(name.labels[j].size()));
        key += name.labels[j];
      }
      if (auto it = offsets_.find(key); it != offsets_.end()) {
        u16(uint16_t(0xC000 | it->second));
        return;
      }
      if (out_.size() < 0x4000) offsets_.emplace(std::move(key), uint16_t(out_.size()));
      u8(uint8_t(name.labels[i].size()));
      out_ += name.labels[i];
    }
    u8(0);
  }

  void record(const Record& record) {
    name(record.name);
    u16(record.type);
    u16(record.klass);
    u32(record.ttl);
    size_t lengthAt = out_.size();
    u16(0);
    if (const auto* raw = std::get_if<std::string>(&record.data)) {
      out_ += *raw;
    } else if (const auto* target = std::get_if<Name>(&record.data)) {
      name(*target);
    } else {
      const auto& soa = std::get<Soa>(record.data);
      name(soa.mname);
      name(soa.rname);
      u32(soa.serial);
      u32(soa.refresh);
      u32(soa.retry);
      u32(soa.expire);
      u32(soa.minimum);
    }
    patch16(lengthAt, uint16_t(out_.size() - lengthAt - 2));
  }

 private:
  std::string out_;
  std::unordered_map<std::string, uint16_t> offsets_;
};

std::string encodeUnlimited(const Message& m) {
  Writer w;
  w.u16(m.id);
  w.u16(uint16_t(m.qr << 15 | (m.opcode & 0xF) << 11 | m.aa << 10 | m.tc << 9 | m.rd << 8 | m.ra << 7 | m.z << 6 |
                 m.ad << 5 | m.cd << 4 | (m.rcode & 0xF)));
  w.u16(uint16_t(m.questions.size()));
  w.u16(uint16_t(m.answers.size()));
  w.u16(uint16_t(m.authority.size()));
  w.u16(uint16_t(m.additional.size() + (m.edns ? 1 : 0)));
  for (const auto& q : m.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.klass);
  }
  for (const auto& r : m.answers) w.record(r);
  for (const auto& r : m.authority) w.record(r);
  for (const auto& r : m.additional) w.record(r);
  if (m.edns) {
    w.u8(0);  // root
    w.u16(type::OPT);
    w.u16(m.edns->udpSize);
    w.u32(uint32_t(m.rcode >> 4 & 0xFF) << 24 | uint32_t(m.edns->version) << 16 | m.edns->flags);
    w.u16(uint16_t(m.edns->options.size()));
    w.out() += m.edns->options;
  }
  return std::move(w.out());
}

}  // namespace

std::optional<Name> Name::fromText(std::string_view dotted) {
  Name name;
  if (dotted == ".") return name;
  if (!dotted.empty() && dotted.back() == '.') dotted.remove_suffix(1);
  if (dotted.empty()) return std::nullopt;
  size_t wireLength = 1;
  while (true) {
    size_t dot = dotted.find('.');
    std::string_view label = dotted.substr(0, dot);
    if (label.empty() || label.size() > 63) return std::nullopt;
    wireLength += 1 + label.size();
    name.labels.emplace_back(label);
    if (dot == std::string_view::npos) break;
    dotted.remove_prefix(dot + 1);
  }
  if (wireLength > kMaxNameWire) return std::nullopt;
  return name;
}

std::string Name::text() const {
  if (labels.empty()) return ".";
  std::string out;
  for (const auto& label : labels) {
    if (!out.empty()) out += '.';
    for (char c : label) {
      auto byte = uint8_t(c);
      if (c == '.' || c == '\\') {
        out += '\\';
        out += c;
      } else if (byte <= 0x20 || byte >= 0x7F) {
        char escaped[5];
        std::snprintf(escaped, sizeof escaped, "\\%03u", unsigned(byte));
        out += escaped;
      } else {
        out += c;
      }
    }
  }
  return out;
}

size_t Name::wireLength() const {
  size_t length = 1;
  for (const auto& label : labels) length += 1 + label.size();
  return length;
}

bool Name::sameAs(const Name& other) const {
  if (labels.size() != other.labels.size()) return false;
  for (size_t i = 0; i < labels.size(); ++i)
    if (!labelEquals(labels[i], other.labels[i])) return false;
  return true;
}

bool Name::isWithin(const Name& zone) const {
  if (zone.labels.size() > labels.size()) return false;
  size_t skip = labels.size() - zone.labels.size();
  for (size_t i = 0; i < zone.labels.size(); ++i)
    if (!labelEquals(labels[skip + i], zone.labels[i])) return false;
  return true;
}

std::optional<std::string> Name::hostName() const {
  std::string out;
  for (const auto& label : labels) {
    if (!out.empty()) out += '.';
    for (char c : label) {
      char lower = asciiLower(c);
      bool plain = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9') || lower == '-' || lower == '_';
      if (!plain) return std::nullopt;
      out += lower;
    }
  }
  return out;
}

std::optional<Message> parseHeader(std::string_view wire) {
  if (wire.size() < kHeaderSize) return std::nullopt;
  Message m;
  auto byte = [&](size_t i) { return uint8_t(wire[i]); };
  m.id = uint16_t(byte(0) << 8 | byte(1));
  uint16_t flags = uint16_t(byte(2) << 8 | byte(3));
  m.qr = flags & 0x8000;
  m.opcode = uint8_t(flags >> 11 & 0xF);
  m.aa = flags & 0x0400;
  m.tc = flags & 0x0200;
  m.rd = flags & 0x0100;
  m.ra = flags & 0x0080;
  m.z = flags & 0x0040;
  m.ad = flags & 0x0020;
  m.cd = flags & 0x0010;
  m.rcode = flags & 0xF;
  return m;
}

std::optional<Message> parseMessage(std::string_view wire, std::string* error) {
  auto failed = [&](std::string reason) -> std::optional<Message> {
    if (error) *error = std::move(reason);
    return std::nullopt;
  };
  if (wire.size() > kMaxMessageSize) return failed("message longer than 65535 bytes");
  auto header = parseHeader(wire);
  if (!header) return failed("message shorter than a DNS header");
  Message message = std::move(*header);
  Reader in(wire);
  uint16_t counts[4];
  std::string skipped;
  if (!in.bytes(4, skipped)) return failed(in.error());
  for (auto& count : counts) in.u16(count);

  // Each question takes at least 5 bytes and each record 11: reject impossible counts up front.
  if (size_t(counts[0]) * 5 + (size_t(counts[1]) + counts[2] + counts[3]) * 11 > wire.size() - kHeaderSize)
    return failed("section counts exceed the message size");
  for (uint16_t i = 0; i < counts[0]; ++i) {
    Question q;
    if (!in.name(q.name) || !in.u16(q.type) || !in.u16(q.klass)) return failed(in.error());
    message.questions.push_back(std::move(q));
  }
  const Section sections[] = {Section::Answer, Section::Authority, Section::Additional};
  for (int s = 0; s < 3; ++s)
    for (uint16_t i = 0; i < counts[s + 1]; ++i)
      if (!readRecord(in, sections[s], message)) return failed(in.error());
  if (in.pos() != wire.size()) return failed("trailing bytes after the last record");
  return message;
}

std::string encodeMessage(const Message& message, size_t maxSize) {
  std::string wire = encodeUnlimited(message);
  if (wire.size() <= maxSize) return wire;
  Message truncated;
  truncated = message;
  truncated.answers.clear();
  truncated.authority.clear();
  truncated.additional.clear();
  truncated.tc = true;
  return encodeUnlimited(truncated);
}

}  // namespace trellis::dns
