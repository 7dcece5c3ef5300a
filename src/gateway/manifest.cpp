#include "gateway/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <istream>
#include <map>
#include <set>
#include <sstream>

namespace trellis::gateway {
namespace {

struct KindInfo {
  const char* kind;
  const char* group;  // "" for the core group
  std::vector<const char*> versions;
  bool namespaced;
};

const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> all = {
      {"GatewayClass", "gateway.networking.k8s.io", {"v1", "v1beta1"}, false},
      {"Gateway", "gateway.networking.k8s.io", {"v1", "v1beta1"}, true},
      {"HTTPRoute", "gateway.networking.k8s.io", {"v1", "v1beta1"}, true},
      {"GRPCRoute", "gateway.networking.k8s.io", {"v1", "v1alpha2"}, true},
      {"TLSRoute", "gateway.networking.k8s.io", {"v1", "v1alpha2", "v1alpha3"}, true},
      {"ReferenceGrant", "gateway.networking.k8s.io", {"v1", "v1beta1", "v1alpha2"}, true},
      {"TargetGroupPolicy", "application-networking.k8s.aws", {"v1alpha1"}, true},
      {"VpcAssociationPolicy", "application-networking.k8s.aws", {"v1alpha1"}, true},
      {"IAMAuthPolicy", "application-networking.k8s.aws", {"v1alpha1"}, true},
      {"AccessLogPolicy", "application-networking.k8s.aws", {"v1alpha1"}, true},
      {"ServiceExport", "application-networking.k8s.aws", {"v1alpha1"}, true},
      {"ServiceImport", "application-networking.k8s.aws", {"v1alpha1"}, true},
      {"ServiceNetwork", "application-networking.k8s.aws", {"v1alpha1"}, false},
      {"Namespace", "", {"v1"}, false},
      {"Service", "", {"v1"}, true},
      {"EndpointSlice", "discovery.k8s.io", {"v1"}, true},
  };
  return all;
}

const KindInfo* findKind(std::string_view kind) {
  for (const auto& k : kinds())
    if (kind == k.kind) return &k;
  return nullptr;
}

// The first shell-style "${NAME}" in `s` (what envsubst would replace), or "". IAM policy variables such
// as "${aws:username}" are not shell names and stay.
std::string unexpandedVariable(const std::string& s) {
  for (size_t at = s.find("${"); at != std::string::npos; at = s.find("${", at + 2)) {
    size_t i = at + 2;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
    bool name = i > at + 2 && !std::isdigit(static_cast<unsigned char>(s[at + 2]));
    if (name && i < s.size() && s[i] == '}') return s.substr(at, i - at + 1);
  }
  return "";
}

// Aliases can make a small document expand enormously; conversion stops past these limits.
constexpr size_t kMaxNodes = 200000;
constexpr int kMaxDepth = 64;

struct Converter {
  std::string file;
  size_t document;
  size_t nodes = 0;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw ManifestError(file + ": document " + std::to_string(document) + (field.empty() ? "" : ": " + field) +
                        ": " + what);
  }

  // Plain scalars get YAML 1.2 core-schema types; quoted ones stay strings.
  static json scalar(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") return s;  // quoted
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    bool digits = std::all_of(s.begin() + (s[0] == '-' || s[0] == '+' ? 1 : 0), s.end(),
                              [](char c) { return c >= '0' && c <= '9'; });
    if (digits && s.size() > (s[0] == '-' || s[0] == '+' ? 1u : 0u) && s.size() < 19) {
      errno = 0;
      long long v = std::strtoll(s.c_str(), nullptr, 10);
      if (errno == 0) return v;
    }
    return s;
  }

  json convert(const YAML::Node& node, const std::string& path, int depth) {
    if (++nodes > kMaxNodes) fail(path, "the document is too large (more than 200000 nodes after aliases)");
    if (depth > kMaxDepth) fail(path, "nested more than 64 levels deep");
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return nullptr;
      case YAML::NodeType::Scalar: {
        json v = scalar(node);
        if (v.is_string()) {
          std::string var = unexpandedVariable(v.get_ref<const std::string&>());
          if (!var.empty())
            fail(path, "'" + v.get<std::string>() + "' holds an unexpanded variable " + var +
                           ": substitute it first (e.g. envsubst < FILE | trellis apply -f -)");
        }
        return v;
      }
      case YAML::NodeType::Sequence: {
        json out = json::array();
        size_t i = 0;
        for (const auto& item : node) out.push_back(convert(item, path + "[" + std::to_string(i++) + "]", depth + 1));
        return out;
      }
      case YAML::NodeType::Map: {
        json out = json::object();
        for (const auto& entry : node) {
          if (!entry.first.IsScalar()) fail(path, "a mapping key is not a string");
          std::string key = entry.first.Scalar();
          std::string child = path.empty() ? key : path + "." + key;
          if (out.contains(key)) fail(child, "the key appears twice");
          out[key] = convert(entry.second, child, depth + 1);
        }
        return out;
      }
    }
    return nullptr;
  }
};

// Line number (1-based) of the first YAML tag ("!foo", "!!str") outside quotes, comments and block
// scalars; 0 if none. Manifests never need tags, and yaml-cpp 0.7 can loop forever on some of them
// ("!a ,"), so they are refused before parsing.
size_t firstTagLine(std::string_view text) {
  size_t line = 0, blockIndent = std::string_view::npos;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    size_t indent = l.find_first_not_of(" \t");
    if (indent == std::string_view::npos) continue;  // blank lines belong to any block scalar
    if (blockIndent != std::string_view::npos) {
      if (indent > blockIndent) continue;  // block scalar content
      blockIndent = std::string_view::npos;
    }
    char quote = 0;
    char prev = ' ';
    size_t lastSignificant = std::string_view::npos;
    for (size_t i = 0; i < l.size(); ++i) {
      char c = l[i];
      if (quote) {
        if (c == '\'' && quote == c && i + 1 < l.size() && l[i + 1] == '\'')
          ++i;  // '' is an escaped quote
        else if (c == quote)
          quote = 0;
        else if (c == '\\' && quote == '"')
          ++i;
      } else if (c == '#' && (prev == ' ' || prev == '\t')) {
        break;
      } else if ((c == '"' || c == '\'') && (prev == ' ' || prev == '\t' || prev == ':' || prev == '[' ||
                                            prev == '{' || prev == ',' || prev == '-' || i == indent)) {
        quote = c;
      } else if (c == '!' && (i == indent || prev == ' ' || prev == '\t' || prev == '[' || prev == '{' || prev == ',')) {
        return line;
      }
      if (c != ' ' && c != '\t') lastSignificant = i;
      prev = c;
    }
    // "key: |" / "- >-": the following more-indented lines are a block scalar.
    if (lastSignificant != std::string_view::npos && !quote) {
      size_t k = lastSignificant;
      while (k > 0 && (std::isdigit(static_cast<unsigned char>(l[k])) || l[k] == '-' || l[k] == '+')) --k;
      if ((l[k] == '|' || l[k] == '>') && (k == indent || l[k - 1] == ' ')) blockIndent = indent;
    }
    if (end == text.size()) break;
  }
  return 0;
}

// Line (1-based) where a document starts with ',' (yaml-cpp 0.7 does not return on that either); 0 if none.
size_t strayCommaLine(std::string_view text) {
  size_t line = 0, pos = 0;
  bool atDocumentStart = true;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (l.substr(0, 3) == "---") {
      atDocumentStart = true;
      l.remove_prefix(3);
    } else if (!l.empty() && l[0] == '%') {
      continue;  // a directive
    }
    size_t first = l.find_first_not_of(" \t\r");
    if (atDocumentStart && first != std::string_view::npos && l[first] != '#') {
      if (l[first] == ',') return line;
      atDocumentStart = false;
    }
    if (end == text.size()) break;
  }
  return 0;
}

std::string str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::string Object::ref() const { return kind + " " + (ns.empty() ? name : ns + "/" + name); }

std::string Object::where(const std::string& field) const {
  return file + ": " + ref() + (field.empty() ? "" : ": " + field);
}

const json& Object::spec() const {
  static const json empty = json::object();
  auto it = body.find("spec");
  return it != body.end() && it->is_object() ? *it : empty;
}

std::string Object::annotation(const std::string& key, const std::string& fallback) const {
  auto meta = body.find("metadata");
  if (meta == body.end() || !meta->is_object()) return fallback;
  auto annotations = meta->find("annotations");
  if (annotations == meta->end() || !annotations->is_object()) return fallback;
  auto it = annotations->find(key);
  return it != annotations->end() && it->is_string() ? it->get<std::string>() : fallback;
}

bool isNamespaced(std::string_view kind) {
  const KindInfo* info = findKind(kind);
  return info == nullptr || info->namespaced;
}

std::vector<Object> parseManifests(std::string_view text, const std::string& file) {
  if (size_t line = firstTagLine(text))
    throw ManifestError(file + ": line " + std::to_string(line) +
                        ": YAML tags (!...) are not supported in manifests; quote the value if it starts with '!'");
  if (size_t line = strayCommaLine(text))
    throw ManifestError(file + ": line " + std::to_string(line) + ": a document cannot start with ','");
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    throw ManifestError(file + ": not valid YAML: line " + std::to_string(e.mark.line + 1) + ", column " +
                        std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  std::vector<Object> out;
  for (size_t i = 0; i < documents.size(); ++i) {
    if (documents[i].IsNull()) continue;  // an empty document between two "---"
    Converter converter{file, i + 1};
    if (!documents[i].IsMap()) converter.fail("", "a manifest must be a mapping with apiVersion, kind and metadata");
    Object obj;
    obj.file = file;
    obj.document = i + 1;
    obj.body = converter.convert(documents[i], "", 0);
    obj.apiVersion = str(obj.body, "apiVersion");
    obj.kind = str(obj.body, "kind");
    if (obj.kind.empty()) converter.fail("kind", "missing: every manifest needs apiVersion and kind");
    const KindInfo* info = findKind(obj.kind);
    if (info == nullptr) {
      std::string known;
      for (const auto& k : kinds()) known += std::string(known.empty() ? "" : ", ") + k.kind;
      converter.fail("kind", "unknown kind '" + obj.kind + "': trellis apply understands " + known);
    }
    const json& meta = obj.body.contains("metadata") ? obj.body["metadata"] : json();
    if (!meta.is_object() || str(meta, "name").empty())
      converter.fail("metadata.name", obj.kind + " has no metadata.name");
    obj.name = str(meta, "name");
    if (info->namespaced) obj.ns = str(meta, "namespace").empty() ? "default" : str(meta, "namespace");
    std::string group = obj.apiVersion.find('/') == std::string::npos ? "" : obj.apiVersion.substr(0, obj.apiVersion.find('/'));
    std::string version = obj.apiVersion.substr(obj.apiVersion.find('/') + 1);
    bool versionOk = group == info->group &&
                     std::any_of(info->versions.begin(), info->versions.end(), [&](const char* v) { return version == v; });
    if (!versionOk) {
      std::string expected;
      for (const char* v : info->versions)
        expected += std::string(expected.empty() ? "" : " or ") + (*info->group ? std::string(info->group) + "/" : "") + v;
      throw ManifestError(obj.where("apiVersion") + ": '" + obj.apiVersion + "' is not an apiVersion of " + obj.kind +
                          " (expected " + expected + ")");
    }
    if (obj.body.contains("spec") && !obj.body["spec"].is_object())
      throw ManifestError(obj.where("spec") + ": must be a mapping");
    out.push_back(std::move(obj));
  }
  return out;
}

std::vector<Object> loadManifests(const std::vector<std::string>& paths, std::istream& stdinStream) {
  namespace fs = std::filesystem;
  std::vector<Object> out;
  auto readFile = [&](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ManifestError(path + ": cannot read the file");
    std::ostringstream text;
    text << in.rdbuf();
    auto objects = parseManifests(text.str(), path);
    out.insert(out.end(), std::make_move_iterator(objects.begin()), std::make_move_iterator(objects.end()));
  };
  for (const auto& path : paths) {
    if (path == "-") {
      std::ostringstream text;
      text << stdinStream.rdbuf();
      auto objects = parseManifests(text.str(), "-");
      out.insert(out.end(), std::make_move_iterator(objects.begin()), std::make_move_iterator(objects.end()));
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<std::string> files;
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json"))
          files.push_back(entry.path().string());
      }
      if (ec) throw ManifestError(path + ": cannot list the directory: " + ec.message());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) readFile(f);
    } else {
      readFile(path);
    }
  }
  std::map<std::string, const Object*> seen;
  for (const auto& obj : out) {
    auto [it, fresh] = seen.emplace(obj.ref(), &obj);
    if (!fresh)
      throw ManifestError(obj.where() + ": defined twice (also in " + it->second->file + ", document " +
                          std::to_string(it->second->document) + ")");
  }
  return out;
}

}  // namespace trellis::gateway
