#include "auth/policy.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/strings.h"

namespace trellis::auth {

using nlohmann::json;

namespace {

// ---- Patterns ----

// A string from a policy, split into literal runs, wildcards and policy variables, so that matching
// needs neither regexes nor a substituted copy of the pattern.
struct Token {
  enum class Kind : uint8_t { Literal, Star, Question, Variable };
  Kind kind = Kind::Literal;
  std::string text;                     // the literal, or the variable's lower-cased key name
  std::optional<std::string> fallback;  // ${key, 'fallback'}
};

struct Glob {
  std::vector<Token> tokens;
  bool ignoreCase = false;
};

// Three outcomes: a value referring to a missing variable matches neither way (a negated operator fails too).
enum class Match : uint8_t { No, Yes, Error };

bool keyNameIs(const RequestContext::Key& key, std::string_view lowerName) {
  if (key.prefix.size() + key.name.size() != lowerName.size()) return false;
  return iequals(key.prefix, lowerName.substr(0, key.prefix.size())) &&
         iequals(key.name, lowerName.substr(key.prefix.size()));
}

// The single value of a key, for substitution: none when the key is missing, empty or multi-valued.
std::optional<std::string_view> singleValue(const RequestContext& ctx, std::string_view lowerName) {
  std::optional<std::string_view> found;
  for (const auto& key : ctx.keys()) {
    if (!keyNameIs(key, lowerName)) continue;
    if (found || key.multiValued) return std::nullopt;
    found = key.value;
  }
  if (found && found->empty()) return std::nullopt;
  return found;
}

bool equalRun(std::string_view text, std::string_view literal, bool ignoreCase) {
  return ignoreCase ? iequals(text, literal) : text == literal;
}

// Wildcard matching with one backtracking point (the last '*'), exact because every other token has a fixed
// length once its variable is resolved. Linear in practice, O(n*m) at worst, never allocates.
Match matchGlob(const Glob& glob, std::string_view text, const RequestContext& ctx) {
  const auto& tokens = glob.tokens;
  // A value with an unresolvable variable is unusable as a whole, whatever the text.
  for (const Token& token : tokens)
    if (token.kind == Token::Kind::Variable && !token.fallback && !singleValue(ctx, token.text)) return Match::Error;
  size_t t = 0, pos = 0;
  size_t starToken = std::string_view::npos, starPos = 0;
  while (true) {
    if (t < tokens.size()) {
      const Token& token = tokens[t];
      if (token.kind == Token::Kind::Star) {
        starToken = ++t;
        starPos = pos;
        continue;
      }
      if (token.kind == Token::Kind::Question) {
        if (pos < text.size()) {
          ++pos, ++t;
          continue;
        }
      } else {
        std::string_view literal = token.text;
        if (token.kind == Token::Kind::Variable) {
          auto value = singleValue(ctx, token.text);
          literal = value ? *value : std::string_view(*token.fallback);
        }
        if (text.size() - pos >= literal.size() &&
            equalRun(text.substr(pos, literal.size()), literal, glob.ignoreCase)) {
          pos += literal.size(), ++t;
          continue;
        }
      }
    } else if (pos == text.size()) {
      return Match::Yes;
    }
    if (starToken == std::string_view::npos || starPos >= text.size()) return Match::No;
    pos = ++starPos;
    t = starToken;
  }
}

struct GlobOptions {
  bool wildcards = true;  // '*' and '?' are wildcards (Like operators, resources, actions)
  bool variables = true;  // ${...} is substituted (policy Version 2012-10-17)
  bool ignoreCase = false;
};

void appendLiteral(Glob& glob, std::string_view text) {
  if (glob.tokens.empty() || glob.tokens.back().kind != Token::Kind::Literal) glob.tokens.push_back({});
  glob.tokens.back().text += text;
}

Glob compileGlob(std::string_view s, const GlobOptions& options) {
  Glob glob;
  glob.ignoreCase = options.ignoreCase;
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (options.wildcards && (c == '*' || c == '?')) {
      glob.tokens.push_back({c == '*' ? Token::Kind::Star : Token::Kind::Question, {}, {}});
      ++i;
      continue;
    }
    size_t close = std::string_view::npos;
    if (options.variables && c == '$' && i + 1 < s.size() && s[i + 1] == '{') close = s.find('}', i + 2);
    if (close == std::string_view::npos) {
      appendLiteral(glob, s.substr(i, 1));
      ++i;
      continue;
    }
    std::string_view inner = s.substr(i + 2, close - i - 2);
    i = close + 1;
    if (inner == "*" || inner == "?" || inner == "$") {  // escapes for characters that are otherwise special
      appendLiteral(glob, inner);
      continue;
    }
    Token variable{Token::Kind::Variable, {}, {}};
    if (size_t comma = inner.find(", "); comma != std::string_view::npos) {
      std::string_view rest = inner.substr(comma + 2);
      if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'') {
        variable.fallback = std::string(rest.substr(1, rest.size() - 2));
        inner = inner.substr(0, comma);
      }
    }
    variable.text = toLower(trim(inner));
    glob.tokens.push_back(std::move(variable));
  }
  return glob;
}

// ---- ARNs ----

// arn:partition:service:region:account:resource — the resource keeps any further colons.
bool splitArn(std::string_view arn, std::array<std::string_view, 5>& parts) {
  if (!arn.starts_with("arn:")) return false;
  arn.remove_prefix(4);
  for (size_t i = 0; i < 4; ++i) {
    size_t colon = arn.find(':');
    if (colon == std::string_view::npos) return false;
    parts[i] = arn.substr(0, colon);
    arn.remove_prefix(colon + 1);
  }
  parts[4] = arn;
  return true;
}

// An ARN pattern matched segment by segment, so a '*' never spans a ':' before the resource part.
struct ArnPattern {
  bool any = false;  // "*"
  std::array<Glob, 5> parts;
  // Lattice's "*/rates" and "*/*": a pattern that starts with a wildcard and is no ARN
  // matches the whole resource string (https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html).
  bool whole = false;
  Glob wholeGlob;
};

Match matchArn(const ArnPattern& pattern, std::string_view arn, const RequestContext& ctx) {
  if (pattern.any) return Match::Yes;
  if (pattern.whole) return matchGlob(pattern.wholeGlob, arn, ctx);
  std::array<std::string_view, 5> parts;
  if (!splitArn(arn, parts)) return Match::Error;
  // Segment by segment, stopping at the first that differs (an unresolvable variable further on changes nothing).
  for (size_t i = 0; i < parts.size(); ++i)
    if (Match m = matchGlob(pattern.parts[i], parts[i], ctx); m != Match::Yes) return m;
  return Match::Yes;
}

// ---- Values of condition operators ----

std::optional<double> parseNumber(std::string_view s) {
  double value = 0;
  if (!s.empty() && s.front() == '+') return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

bool readDigits(std::string_view s, size_t& pos, size_t count, int& out) {
  if (pos + count > s.size()) return false;
  out = 0;
  for (size_t i = 0; i < count; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += count;
  return true;
}

int64_t daysFromCivil(int y, int m, int d) {  // Howard Hinnant's algorithm
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Milliseconds since the epoch from W3C/ISO 8601 ("2024-05-01", "2024-05-01T12:00:00Z",
// "2024-05-01T12:00:00.5+02:00") or from an integer number of epoch seconds.
std::optional<int64_t> parseDate(std::string_view s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos && s.size() <= 12) {
    int64_t seconds = 0;
    std::from_chars(s.data(), s.data() + s.size(), seconds);
    return seconds * 1000;
  }
  size_t pos = 0;
  int year, month, day, hour = 0, minute = 0, second = 0;
  if (!readDigits(s, pos, 4, year) || pos >= s.size() || s[pos++] != '-' || !readDigits(s, pos, 2, month) ||
      pos >= s.size() || s[pos++] != '-' || !readDigits(s, pos, 2, day))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31) return std::nullopt;
  int64_t millis = 0, offsetMinutes = 0;
  if (pos < s.size()) {
    if (s[pos++] != 'T' || !readDigits(s, pos, 2, hour) || pos >= s.size() || s[pos++] != ':' ||
        !readDigits(s, pos, 2, minute))
      return std::nullopt;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!readDigits(s, pos, 2, second)) return std::nullopt;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int64_t scale = 100;
        size_t start = pos;
        for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, scale /= 10) millis += (s[pos] - '0') * scale;
        if (pos == start) return std::nullopt;
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
    if (pos >= s.size()) return std::nullopt;  // a time needs a zone
    char zone = s[pos++];
    if (zone == '+' || zone == '-') {
      int oh, om;
      if (!readDigits(s, pos, 2, oh) || pos >= s.size() || s[pos++] != ':' || !readDigits(s, pos, 2, om))
        return std::nullopt;
      offsetMinutes = (zone == '+' ? 1 : -1) * (oh * 60 + om);
    } else if (zone != 'Z') {
      return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
  }
  int64_t seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offsetMinutes * 60;
  return seconds * 1000 + millis;
}

struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
};

std::optional<IpAddress> parseIp(std::string_view s) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (s.empty() || s.size() >= sizeof buffer) return std::nullopt;
  std::memcpy(buffer, s.data(), s.size());
  buffer[s.size()] = '\0';
  IpAddress ip;
  ip.family = s.find(':') == std::string_view::npos ? AF_INET : AF_INET6;
  if (inet_pton(ip.family, buffer, ip.bytes.data()) != 1) return std::nullopt;
  return ip;
}

struct Cidr {
  IpAddress network;
  int prefix = 0;
};

std::optional<Cidr> parseCidr(std::string_view s) {
  size_t slash = s.find('/');
  auto ip = parseIp(s.substr(0, slash));
  if (!ip) return std::nullopt;
  int maxPrefix = ip->family == AF_INET ? 32 : 128;
  int prefix = maxPrefix;
  if (slash != std::string_view::npos) {
    std::string_view digits = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || prefix < 0 || prefix > maxPrefix)
      return std::nullopt;
  }
  return Cidr{*ip, prefix};
}

bool inCidr(const Cidr& cidr, const IpAddress& ip) {
  int bits = cidr.prefix;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((cidr.network.bytes[i] & mask) != (ip.bytes[i] & mask)) return false;
  }
  return true;
}

// ---- Conditions ----

enum class Family : uint8_t { String, Numeric, Date, Bool, Binary, Ip, Arn, Null };
enum class Compare : uint8_t { Equal, Less, LessEqual, Greater, GreaterEqual };
enum class SetOperator : uint8_t { None, ForAllValues, ForAnyValue };

struct OperatorInfo {
  std::string_view name;
  Family family;
  Compare compare = Compare::Equal;
  bool negated = false;
  bool like = false;  // wildcards in values
  bool ignoreCase = false;
};

constexpr OperatorInfo kOperators[] = {
    {"StringEquals", Family::String},
    {"StringNotEquals", Family::String, Compare::Equal, true},
    {"StringEqualsIgnoreCase", Family::String, Compare::Equal, false, false, true},
    {"StringNotEqualsIgnoreCase", Family::String, Compare::Equal, true, false, true},
    {"StringLike", Family::String, Compare::Equal, false, true},
    {"StringNotLike", Family::String, Compare::Equal, true, true},
    {"NumericEquals", Family::Numeric},
    {"NumericNotEquals", Family::Numeric, Compare::Equal, true},
    {"NumericLessThan", Family::Numeric, Compare::Less},
    {"NumericLessThanEquals", Family::Numeric, Compare::LessEqual},
    {"NumericGreaterThan", Family::Numeric, Compare::Greater},
    {"NumericGreaterThanEquals", Family::Numeric, Compare::GreaterEqual},
    {"DateEquals", Family::Date},
    {"DateNotEquals", Family::Date, Compare::Equal, true},
    {"DateLessThan", Family::Date, Compare::Less},
    {"DateLessThanEquals", Family::Date, Compare::LessEqual},
    {"DateGreaterThan", Family::Date, Compare::Greater},
    {"DateGreaterThanEquals", Family::Date, Compare::GreaterEqual},
    {"Bool", Family::Bool},
    {"BinaryEquals", Family::Binary},
    {"IpAddress", Family::Ip},
    {"NotIpAddress", Family::Ip, Compare::Equal, true},
    {"ArnEquals", Family::Arn, Compare::Equal, false, true},  // ArnEquals takes wildcards like ArnLike
    {"ArnLike", Family::Arn, Compare::Equal, false, true},
    {"ArnNotEquals", Family::Arn, Compare::Equal, true, true},
    {"ArnNotLike", Family::Arn, Compare::Equal, true, true},
    {"Null", Family::Null},
};

struct Condition {
  OperatorInfo op;
  SetOperator set = SetOperator::None;
  bool ifExists = false;
  std::string key;  // lower-cased
  // The policy's values, in the form of the operator's family (only one vector is used).
  std::vector<Glob> strings;
  std::vector<double> numbers;
  std::vector<int64_t> dates;
  std::vector<bool> bools;
  std::vector<Cidr> cidrs;
  std::vector<ArnPattern> arns;
};

template <typename T>
bool compareValues(Compare compare, T request, T policy) {
  switch (compare) {
    case Compare::Equal: return request == policy;
    case Compare::Less: return request < policy;
    case Compare::LessEqual: return request <= policy;
    case Compare::Greater: return request > policy;
    case Compare::GreaterEqual: return request >= policy;
  }
  return false;
}

// Whether one request value matches one policy value, in the operator's positive sense.
Match matchOne(const Condition& c, size_t i, std::string_view value, const RequestContext& ctx) {
  switch (c.op.family) {
    case Family::String:
    case Family::Binary: return matchGlob(c.strings[i], value, ctx);
    case Family::Numeric: {
      auto number = parseNumber(value);
      if (!number) return Match::Error;
      return compareValues(c.op.compare, *number, c.numbers[i]) ? Match::Yes : Match::No;
    }
    case Family::Date: {
      auto date = parseDate(value);
      if (!date) return Match::Error;
      return compareValues(c.op.compare, *date, c.dates[i]) ? Match::Yes : Match::No;
    }
    case Family::Bool: {
      bool isTrue = iequals(value, "true");
      if (!isTrue && !iequals(value, "false")) return Match::Error;
      return isTrue == c.bools[i] ? Match::Yes : Match::No;
    }
    case Family::Ip: {
      auto ip = parseIp(value);
      if (!ip) return Match::Error;
      const Cidr& cidr = c.cidrs[i];
      return cidr.network.family == ip->family && inCidr(cidr, *ip) ? Match::Yes : Match::No;
    }
    case Family::Arn: return matchArn(c.arns[i], value, ctx);
    case Family::Null: return Match::Error;  // handled by the caller
  }
  return Match::Error;
}

size_t valueCount(const Condition& c) {
  switch (c.op.family) {
    case Family::String:
    case Family::Binary: return c.strings.size();
    case Family::Numeric: return c.numbers.size();
    case Family::Date: return c.dates.size();
    case Family::Bool:
    case Family::Null: return c.bools.size();
    case Family::Ip: return c.cidrs.size();
    case Family::Arn: return c.arns.size();
  }
  return 0;
}

// One request value against the policy's values: any of them for a positive operator; for a negated one, none
// of them (and every one must be comparable).
bool matchValue(const Condition& c, std::string_view value, const RequestContext& ctx) {
  size_t n = valueCount(c);
  for (size_t i = 0; i < n; ++i) {
    Match m = matchOne(c, i, value, ctx);
    if (!c.op.negated && m == Match::Yes) return true;
    if (c.op.negated && m != Match::No) return false;
  }
  return c.op.negated;
}

bool matchCondition(const Condition& c, const RequestContext& ctx) {
  size_t count = 0;
  bool multiValued = false;
  std::string_view first;
  for (const auto& key : ctx.keys()) {
    if (!keyNameIs(key, c.key)) continue;
    if (count++ == 0) first = key.value;
    multiValued |= key.multiValued;
  }
  multiValued |= count > 1;

  if (c.op.family == Family::Null) {
    bool missing = count == 0;
    for (bool want : c.bools)
      if (want == missing) return true;
    return false;
  }
  if (c.set == SetOperator::None) {
    if (count == 0) return c.ifExists || c.op.negated;
    if (multiValued) return false;  // a multi-valued key needs a set operator
    return matchValue(c, first, ctx);
  }
  if (count == 0) return c.set == SetOperator::ForAllValues;
  bool all = c.set == SetOperator::ForAllValues;
  for (const auto& key : ctx.keys()) {
    if (!keyNameIs(key, c.key)) continue;
    if (matchValue(c, key.value, ctx) != all) return !all;
  }
  return all;
}

// ---- Statements ----

struct PrincipalEntry {
  enum class Kind : uint8_t { Any, Account, Arn, Other };  // Other: Service/Federated/CanonicalUser principals
  Kind kind;
  std::string value;
};

struct Statement {
  std::string sid;
  bool deny = false;
  bool hasPrincipal = false;
  bool notPrincipal = false;
  std::vector<PrincipalEntry> principals;
  bool notAction = false;
  std::vector<Glob> actions;
  bool hasResource = false;
  bool notResource = false;
  std::vector<ArnPattern> resources;
  std::vector<Condition> conditions;
};

// "arn:aws:sts::111122223333:assumed-role/Role/session" is a session of "arn:aws:iam::111122223333:role/path/Role".
bool isSessionOf(std::string_view caller, std::string_view roleArn) {
  std::array<std::string_view, 5> c, r;
  if (!splitArn(caller, c) || !splitArn(roleArn, r)) return false;
  if (c[1] != "sts" || r[1] != "iam" || c[0] != r[0] || c[3] != r[3]) return false;
  if (!c[4].starts_with("assumed-role/") || !r[4].starts_with("role/")) return false;
  std::string_view session = c[4].substr(13);
  std::string_view role = r[4].substr(r[4].rfind('/') + 1);
  return session.size() > role.size() && session.starts_with(role) && session[role.size()] == '/';
}

bool principalMatches(const PrincipalEntry& entry, std::string_view caller) {
  if (entry.kind == PrincipalEntry::Kind::Any) return true;
  if (caller.empty()) return false;  // only "*" names anonymous callers
  switch (entry.kind) {
    case PrincipalEntry::Kind::Account: {
      std::array<std::string_view, 5> parts;
      return splitArn(caller, parts) && parts[3] == entry.value;
    }
    case PrincipalEntry::Kind::Arn: return caller == entry.value || isSessionOf(caller, entry.value);
    default: return false;
  }
}

Match statementResourceMatch(const Statement& s, const RequestContext& ctx) {
  if (!s.hasResource) return Match::Yes;
  bool any = false;
  for (const auto& pattern : s.resources) {
    Match m = matchArn(pattern, ctx.resource, ctx);
    if (m == Match::Yes) any = true;
    // An unresolvable variable in NotResource proves nothing about the request: the statement does not apply.
    if (m == Match::Error && s.notResource) return Match::No;
  }
  return any != s.notResource ? Match::Yes : Match::No;
}

bool statementMatches(const Statement& s, const RequestContext& ctx) {
  if (s.hasPrincipal) {
    bool any = false;
    for (const auto& entry : s.principals) any = any || principalMatches(entry, ctx.principal);
    if (any == s.notPrincipal) return false;
  }
  bool action = false;
  for (const auto& glob : s.actions) action = action || matchGlob(glob, ctx.action, ctx) == Match::Yes;
  if (action == s.notAction) return false;
  if (statementResourceMatch(s, ctx) != Match::Yes) return false;
  for (const auto& condition : s.conditions)
    if (!matchCondition(condition, ctx)) return false;
  return true;
}

}  // namespace

struct CompiledPolicy {
  std::vector<Statement> statements;
};

struct PolicyAccess {
  static const CompiledPolicy& compiled(const Policy& policy) { return *policy.compiled_; }
  static Policy make(CompiledPolicy compiled) {
    return Policy(std::make_shared<const CompiledPolicy>(std::move(compiled)));
  }
};

size_t Policy::statementCount() const { return compiled_->statements.size(); }
std::string_view Policy::sid(size_t statement) const { return compiled_->statements.at(statement).sid; }

// ---- Parsing ----

namespace {

struct Invalid {
  std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw Invalid{where + ": " + what}; }

std::string quoted(const json& value) { return value.dump(); }

// A string or a non-empty list of strings.
std::vector<std::string> readStrings(const json& value, const std::string& where) {
  std::vector<std::string> out;
  if (value.is_string()) {
    out.push_back(value.get<std::string>());
    return out;
  }
  if (!value.is_array() || value.empty()) fail(where, "must be a string or a non-empty list of strings");
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) fail(where + "[" + std::to_string(i) + "]", "must be a string");
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

bool isAccountId(std::string_view s) {
  return s.size() == 12 && s.find_first_not_of("0123456789") == std::string_view::npos;
}

ArnPattern compileArn(std::string_view text, const std::string& where, bool ignoreCasePrefix, bool variables) {
  ArnPattern pattern;
  if (text == "*") {
    pattern.any = true;
    return pattern;
  }
  std::array<std::string_view, 5> parts;
  if (!splitArn(text, parts) && ignoreCasePrefix && text.starts_with('*')) {  // Resource only
    pattern.whole = true;
    pattern.wholeGlob = compileGlob(text, {.wildcards = true, .variables = variables, .ignoreCase = false});
    return pattern;
  }
  if (!splitArn(text, parts))
    fail(where, "\"" + std::string(text) + "\" is not a valid ARN (arn:partition:service:region:account:resource)");
  for (size_t i = 0; i < parts.size(); ++i)
    pattern.parts[i] =
        compileGlob(parts[i], {.wildcards = true, .variables = variables, .ignoreCase = ignoreCasePrefix && i < 4});
  return pattern;
}

std::vector<PrincipalEntry> readPrincipal(const json& value, const std::string& where) {
  std::vector<PrincipalEntry> out;
  if (value.is_string()) {
    if (value != "*") fail(where, "must be \"*\" or an object such as {\"AWS\": \"arn:...\"}, not " + quoted(value));
    out.push_back({PrincipalEntry::Kind::Any, "*"});
    return out;
  }
  if (!value.is_object() || value.empty()) fail(where, "must be \"*\" or an object such as {\"AWS\": \"arn:...\"}");
  for (const auto& [type, ids] : value.items()) {
    std::string at = where + "." + type;
    if (type != "AWS" && type != "Service" && type != "Federated" && type != "CanonicalUser")
      fail(where, "unknown principal type " + type + " (expected AWS, Service, Federated or CanonicalUser)");
    for (const auto& id : readStrings(ids, at)) {
      if (type != "AWS") {
        out.push_back({PrincipalEntry::Kind::Other, id});
      } else if (id == "*") {
        out.push_back({PrincipalEntry::Kind::Any, id});
      } else if (isAccountId(id)) {
        out.push_back({PrincipalEntry::Kind::Account, id});
      } else {
        std::array<std::string_view, 5> parts;
        if (!splitArn(id, parts) || parts[4].empty())
          fail(at, "\"" + id + "\" is neither an ARN, an account id nor \"*\"");
        if (parts[1] == "iam" && parts[4] == "root" && isAccountId(parts[3]))
          out.push_back({PrincipalEntry::Kind::Account, std::string(parts[3])});
        else
          out.push_back({PrincipalEntry::Kind::Arn, id});
      }
    }
  }
  return out;
}

const OperatorInfo* findOperator(std::string_view name) {
  for (const auto& op : kOperators)
    if (iequals(op.name, name)) return &op;
  return nullptr;
}

// A condition value as the policy wrote it: strings, numbers and booleans (JSON or quoted) are all accepted.
std::vector<std::string> readConditionValues(const json& value, const std::string& where) {
  auto one = [&](const json& v, const std::string& at) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number() || v.is_boolean()) return v.dump();
    fail(at, "a condition value must be a string, number or boolean, not " + quoted(v));
  };
  std::vector<std::string> out;
  if (!value.is_array()) {
    out.push_back(one(value, where));
    return out;
  }
  if (value.empty()) fail(where, "has no values");
  for (size_t i = 0; i < value.size(); ++i) out.push_back(one(value[i], where + "[" + std::to_string(i) + "]"));
  return out;
}

std::vector<Condition> readConditions(const json& block, const std::string& where, bool variables) {
  if (!block.is_object()) fail(where, "must be an object of operators");
  std::vector<Condition> out;
  for (const auto& [fullName, keys] : block.items()) {
    std::string_view name = fullName;
    SetOperator set = SetOperator::None;
    if (size_t colon = name.find(':'); colon != std::string_view::npos) {
      std::string_view prefix = name.substr(0, colon);
      if (iequals(prefix, "ForAllValues"))
        set = SetOperator::ForAllValues;
      else if (iequals(prefix, "ForAnyValue"))
        set = SetOperator::ForAnyValue;
      else
        fail(where, "unknown set operator " + std::string(prefix) + " (expected ForAllValues or ForAnyValue)");
      name.remove_prefix(colon + 1);
    }
    bool ifExists = name.size() > 8 && iequals(name.substr(name.size() - 8), "IfExists");
    if (ifExists) name.remove_suffix(8);
    const OperatorInfo* op = findOperator(name);
    if (!op || (op->family == Family::Null && (ifExists || set != SetOperator::None)))
      fail(where, "unknown operator " + fullName);
    std::string opWhere = where + "." + fullName;
    if (!keys.is_object() || keys.empty()) fail(opWhere, "must be an object of condition keys and values");
    for (const auto& [key, values] : keys.items()) {
      std::string at = opWhere + "." + key;
      if (key.empty()) fail(opWhere, "a condition key name is empty");
      Condition c{*op, set, ifExists, toLower(key), {}, {}, {}, {}, {}, {}};
      for (const std::string& v : readConditionValues(values, at)) {
        std::string bad = "\"" + v + "\" is not ";
        switch (op->family) {
          case Family::String: c.strings.push_back(compileGlob(v, {op->like, variables, op->ignoreCase})); break;
          case Family::Binary: c.strings.push_back(compileGlob(v, {false, false, false})); break;
          case Family::Numeric: {
            auto number = parseNumber(v);
            if (!number) fail(at, bad + "a number");
            c.numbers.push_back(*number);
            break;
          }
          case Family::Date: {
            auto date = parseDate(v);
            if (!date) fail(at, bad + "a date (ISO 8601 such as 2024-05-01T00:00:00Z, or epoch seconds)");
            c.dates.push_back(*date);
            break;
          }
          case Family::Bool:
          case Family::Null:
            if (!iequals(v, "true") && !iequals(v, "false")) fail(at, bad + "true or false");
            c.bools.push_back(iequals(v, "true"));
            break;
          case Family::Ip: {
            auto cidr = parseCidr(v);
            if (!cidr) fail(at, bad + "an IPv4 or IPv6 address or CIDR block");
            c.cidrs.push_back(*cidr);
            break;
          }
          case Family::Arn: c.arns.push_back(compileArn(v, at, false, variables)); break;
        }
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

void checkOnlyKeys(const json& object, std::initializer_list<std::string_view> allowed, const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (auto name : allowed) known = known || key == name;
    if (!known) fail(where, "unknown key " + key);
  }
}

Statement readStatement(const json& s, const std::string& where, PolicyKind kind, bool variables) {
  if (!s.is_object()) fail(where, "must be an object");
  checkOnlyKeys(
      s, {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"},
      where);
  Statement out;
  if (auto sid = s.find("Sid"); sid != s.end()) {
    if (!sid->is_string()) fail(where + ".Sid", "must be a string");
    out.sid = sid->get<std::string>();
  }
  auto effect = s.find("Effect");
  if (effect == s.end()) throw Invalid{where + ".Effect is missing"};
  if (*effect != "Allow" && *effect != "Deny")
    fail(where + ".Effect", "must be \"Allow\" or \"Deny\", not " + quoted(*effect));
  out.deny = *effect == "Deny";

  auto principal = s.find("Principal"), notPrincipal = s.find("NotPrincipal");
  if (principal != s.end() && notPrincipal != s.end()) fail(where, "has both Principal and NotPrincipal");
  out.hasPrincipal = principal != s.end() || notPrincipal != s.end();
  if (kind == PolicyKind::Identity && out.hasPrincipal)
    fail(where, "an identity-based policy cannot name a Principal or NotPrincipal");
  // A resource-based statement without a Principal names nobody, so it never applies (as the oracle sees it).
  if (kind == PolicyKind::Resource) out.hasPrincipal = true;
  if (principal != s.end() || notPrincipal != s.end()) {
    out.notPrincipal = notPrincipal != s.end();
    out.principals = readPrincipal(out.notPrincipal ? *notPrincipal : *principal,
                                   where + (out.notPrincipal ? ".NotPrincipal" : ".Principal"));
  }

  auto action = s.find("Action"), notAction = s.find("NotAction");
  if (action != s.end() && notAction != s.end()) fail(where, "has both Action and NotAction");
  if (action == s.end() && notAction == s.end()) throw Invalid{where + ".Action is missing"};
  out.notAction = notAction != s.end();
  std::string actionWhere = where + (out.notAction ? ".NotAction" : ".Action");
  for (const auto& a : readStrings(out.notAction ? *notAction : *action, actionWhere)) {
    if (a != "*" && a.find(':') == std::string::npos) fail(actionWhere, "\"" + a + "\" is not service:action or \"*\"");
    out.actions.push_back(compileGlob(a, {.wildcards = true, .variables = false, .ignoreCase = true}));
  }

  auto resource = s.find("Resource"), notResource = s.find("NotResource");
  if (resource != s.end() && notResource != s.end()) fail(where, "has both Resource and NotResource");
  out.hasResource = resource != s.end() || notResource != s.end();
  // An auth policy without Resource covers every resource; an identity policy must say.
  if (kind == PolicyKind::Identity && !out.hasResource) throw Invalid{where + ".Resource is missing"};
  if (out.hasResource) {
    out.notResource = notResource != s.end();
    std::string resourceWhere = where + (out.notResource ? ".NotResource" : ".Resource");
    for (const auto& r : readStrings(out.notResource ? *notResource : *resource, resourceWhere))
      out.resources.push_back(compileArn(r, resourceWhere, true, variables));
  }

  if (auto condition = s.find("Condition"); condition != s.end())
    out.conditions = readConditions(*condition, where + ".Condition", variables);
  return out;
}

}  // namespace

std::variant<Policy, PolicyError> parsePolicy(std::string_view text, PolicyKind kind) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    return PolicyError{"The policy is not valid JSON (at byte " + std::to_string(e.byte) + ")"};
  } catch (const json::exception&) {  // out_of_range: a number too large for a double
    return PolicyError{"The policy is not valid JSON (a number is out of range)"};
  }
  try {
    if (!doc.is_object()) fail("Policy", "must be a JSON object");
    checkOnlyKeys(doc, {"Version", "Id", "Statement"}, "Policy");
    // Policy variables exist only in Version 2012-10-17; before it (and without a Version) "${" is literal.
    bool variables = false;
    if (auto version = doc.find("Version"); version != doc.end()) {
      if (*version != "2012-10-17" && *version != "2008-10-17")
        fail("Version", "must be \"2012-10-17\" or \"2008-10-17\", not " + quoted(*version));
      variables = *version == "2012-10-17";
    }
    if (auto id = doc.find("Id"); id != doc.end() && !id->is_string()) fail("Id", "must be a string");
    auto statement = doc.find("Statement");
    if (statement == doc.end()) throw Invalid{"The policy has no Statement"};
    CompiledPolicy compiled;
    if (statement->is_array()) {
      if (statement->empty()) fail("Statement", "is empty");
      for (size_t i = 0; i < statement->size(); ++i)
        compiled.statements.push_back(
            readStatement((*statement)[i], "Statement[" + std::to_string(i) + "]", kind, variables));
    } else {
      compiled.statements.push_back(readStatement(*statement, "Statement", kind, variables));
    }
    return PolicyAccess::make(std::move(compiled));
  } catch (const Invalid& e) {
    return PolicyError{e.message};
  }
}

// ---- Evaluation ----

Decision evaluate(const Policy& policy, const RequestContext& ctx) {
  Decision decision;
  const auto& statements = PolicyAccess::compiled(policy).statements;
  for (size_t i = 0; i < statements.size(); ++i) {
    const Statement& s = statements[i];
    if (decision.effect == Effect::Allow && !s.deny) continue;  // only a Deny can change the answer now
    if (!statementMatches(s, ctx)) continue;
    decision.statement = static_cast<int>(i);
    if (s.deny) {
      decision.effect = Effect::ExplicitDeny;
      return decision;
    }
    decision.effect = Effect::Allow;
  }
  return decision;
}

void addPrincipalKeys(RequestContext& ctx, const model::Identity* identity) {
  if (!identity) {
    ctx.principal = {};
    ctx.add("aws:PrincipalType", "Anonymous");
    return;
  }
  ctx.principal = identity->arn;
  ctx.add("aws:PrincipalArn", identity->arn);
  std::array<std::string_view, 5> parts;
  if (splitArn(identity->arn, parts)) {
    ctx.add("aws:PrincipalAccount", parts[3]);
    std::string_view resource = parts[4];
    std::string_view type = "AssumedRole";  // roles sign with session credentials
    if (resource == "root") {
      type = "Account";
    } else if (resource.starts_with("user/")) {
      type = "User";
      ctx.add("aws:username", resource.substr(resource.rfind('/') + 1));
    } else if (resource.starts_with("federated-user/")) {
      type = "FederatedUser";
    }
    ctx.add("aws:PrincipalType", type);
  }
  if (!identity->orgId.empty()) ctx.add("aws:PrincipalOrgID", identity->orgId);
  for (const auto& path : identity->orgPaths) ctx.add({}, "aws:PrincipalOrgPaths", path, true);
  for (const auto& [key, value] : identity->tags) ctx.add("aws:PrincipalTag/", key, value, false);
}

void addLatticeRequestKeys(RequestContext& ctx, const LatticeRequest& request) {
  auto addIfSet = [&](std::string_view name, std::string_view value) {
    if (!value.empty()) ctx.add(name, value);
  };
  ctx.action = request.connect ? "vpc-lattice-svcs:Connect" : "vpc-lattice-svcs:Invoke";
  addIfSet("vpc-lattice-svcs:ServiceArn", request.serviceArn);
  addIfSet("vpc-lattice-svcs:ServiceNetworkArn", request.serviceNetworkArn);
  addIfSet("vpc-lattice-svcs:SourceVpc", request.sourceVpc);
  addIfSet("vpc-lattice-svcs:SourceVpcOwnerAccount", request.sourceVpcOwnerAccount);
  addIfSet("vpc-lattice-svcs:Port", request.port);
  addIfSet("aws:SourceIp", request.sourceIp);
  addIfSet("aws:CurrentTime", request.currentTime);
  ctx.add("aws:SecureTransport", request.secureTransport ? "true" : "false");
  if (request.connect) return;  // Connect supports only the keys above
  addIfSet("vpc-lattice-svcs:RequestMethod", request.method);
  addIfSet("vpc-lattice-svcs:RequestPath", request.path);
  if (request.headers)
    for (const auto& [name, value] : *request.headers) ctx.add("vpc-lattice-svcs:RequestHeader/", name, value, false);
  // ArrayOfString: a query key is multi-valued even when it appears once.
  if (request.query)
    for (const auto& [key, value] : *request.query) ctx.add("vpc-lattice-svcs:RequestQueryString/", key, value, true);
}

std::string_view authLayerName(AuthLayer layer) {
  switch (layer) {
    case AuthLayer::Identity: return "Identity";
    case AuthLayer::Network: return "Network";
    case AuthLayer::Service: return "Service";
  }
  return "Service";
}

LatticeDecision authorizeLattice(const LatticeAuthPolicies& policies, const RequestContext& ctx) {
  struct Layer {
    AuthLayer layer;
    bool inForce;
    const Policy* policy;
  };
  const Layer layers[] = {{AuthLayer::Identity, policies.identity != nullptr, policies.identity},
                          {AuthLayer::Network, policies.networkUsesIam, policies.network},
                          {AuthLayer::Service, policies.serviceUsesIam, policies.service}};
  std::optional<AuthLayer> implicit;
  for (const auto& layer : layers) {
    if (!layer.inForce) continue;
    Effect effect = layer.policy ? evaluate(*layer.policy, ctx).effect : Effect::ImplicitDeny;
    if (effect == Effect::ExplicitDeny) return {false, layer.layer, true};
    if (effect == Effect::ImplicitDeny && !implicit) implicit = layer.layer;
  }
  if (implicit) return {false, *implicit, false};
  return {};
}

std::string accessDeniedMessage(const LatticeDecision& decision, const RequestContext& ctx) {
  std::string layer = toLower(authLayerName(decision.deniedBy));
  std::string message = "AccessDeniedException: User: ";
  message += ctx.principal.empty() ? std::string_view("anonymous") : ctx.principal;
  message += " is not authorized to perform: ";
  message += ctx.action;
  message += " on resource: ";
  message += ctx.resource;
  if (decision.explicitDeny) {
    // "an identity-based policy", as IAM writes it; "a service-based" / "a network-based" as Lattice does.
    message += std::string(" with an explicit deny in ") + (decision.deniedBy == AuthLayer::Identity ? "an " : "a ") +
               layer + "-based policy";
  } else {
    message += " because no " + layer + "-based policy allows the ";
    message += ctx.action;
    message += " action";
  }
  return message;
}

}  // namespace trellis::auth
