#include "proxy/upstream/lambda_event.h"

#include <map>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/strings.h"

namespace trellis::proxy {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// RFC 3629: a text body that is not UTF-8 cannot be a JSON string as it is, so it goes base64.
bool isUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 4;
    if (extra == 4 || i + extra >= s.size() + (extra == 0)) return false;
    uint32_t code = extra == 0 ? c : c & (0x3F >> extra);
    for (size_t k = 1; k <= extra; ++k) {
      auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = code << 6 | (next & 0x3F);
    }
    // Overlong forms, surrogates and what is above U+10FFFF are not UTF-8.
    static constexpr uint32_t kLeast[] = {0, 0x80, 0x800, 0x10000};
    if (code < kLeast[extra] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

// The session of an assumed role's ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION), else empty.
std::string_view sessionName(std::string_view arn) {
  size_t at = arn.find(":assumed-role/");
  if (at == std::string_view::npos) return {};
  size_t slash = arn.rfind('/');
  return slash > at + 14 ? arn.substr(slash + 1) : std::string_view();
}

const std::string_view* headerValue(const std::vector<HeaderView>& headers, std::string_view name) {
  for (const auto& field : headers)
    if (field.first == name) return &field.second;
  return nullptr;
}

// Field names are tokens (RFC 9110 5.1); values carry no CR, LF or NUL (RFC 9110 5.5).
bool isFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}
bool isFieldValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

bool lambdaBodyIsBinary(const std::vector<HeaderView>& headers) {
  if (headerValue(headers, "content-encoding")) return true;
  const std::string_view* type = headerValue(headers, "content-type");
  if (!type) return true;
  std::string media = toLower(trim(type->substr(0, type->find(';'))));
  return !(startsWith(media, "text/") || media == "application/json" || media == "application/xml" ||
           media == "application/javascript");
}

std::string lambdaEvent(const LambdaRequest& r) {
  const bool v2 = r.v2;
  // Repeated fields and query keys: V1 joins the values with ", " (a query key keeps its last), V2 lists them.
  std::map<std::string, std::vector<std::string>> headers, query;
  for (const auto& [name, value] : r.headers) headers[std::string(name)].emplace_back(value);
  std::string_view target = r.target;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    for (auto pair : split(target.substr(q + 1), '&')) {
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      auto key = percentDecode(pair.substr(0, eq));
      auto value = percentDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      query[key.value_or(std::string(pair.substr(0, eq)))].push_back(
          value.value_or(std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1))));
    }
  }
  ordered_json headersJson = ordered_json::object(), queryJson = ordered_json::object();
  for (auto& [name, values] : headers) {
    if (v2) {
      headersJson[name] = values;
    } else {
      std::string joined;
      for (const auto& value : values) joined += (joined.empty() ? "" : ", ") + value;
      headersJson[name] = joined;
    }
  }
  for (auto& [key, values] : query) {
    if (v2) {
      queryJson[key] = values;
    } else {
      queryJson[key] = values.back();
    }
  }
  bool base64 = !r.body.empty() && (lambdaBodyIsBinary(r.headers) || !isUtf8(r.body));
  std::string body = base64 ? base64Encode(r.body) : std::string(r.body);

  ordered_json event;
  if (v2) {
    event["version"] = "2.0";
    event["path"] = std::string(r.target);
  } else {
    event["raw_path"] = std::string(r.target);
  }
  event["method"] = std::string(r.method);
  event["headers"] = std::move(headersJson);
  event[v2 ? "queryStringParameters" : "query_string_parameters"] = std::move(queryJson);
  event["body"] = std::move(body);
  event[v2 ? "isBase64Encoded" : "is_base64_encoded"] = base64;
  if (v2) {
    ordered_json identity = ordered_json::object();
    if (!r.sourceVpcArn.empty()) identity["sourceVpcArn"] = std::string(r.sourceVpcArn);
    if (r.caller) {
      identity["type"] = "AWS_IAM";
      identity["principal"] = r.caller->arn;
      if (!r.caller->orgId.empty()) identity["principalOrgID"] = r.caller->orgId;
      if (auto session = sessionName(r.caller->arn); !session.empty()) identity["sessionName"] = std::string(session);
    }
    ordered_json context;
    context["serviceNetworkArn"] = std::string(r.serviceNetworkArn);
    context["serviceArn"] = std::string(r.serviceArn);
    context["targetGroupArn"] = std::string(r.targetGroupArn);
    context["identity"] = std::move(identity);
    context["region"] = std::string(r.region);
    context["timeEpoch"] = std::to_string(r.timeEpochMicros);
    event["requestContext"] = std::move(context);
  }
  // Field values may hold bytes that are not UTF-8 (RFC 9110 5.5 obs-text): replaced, not refused.
  return event.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

bool parseLambdaResponse(std::string_view payload, LambdaResponse& out, std::string& error) {
  out = {};
  json doc = json::parse(payload, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "the function's answer is not a JSON object";
    return false;
  }
  auto status = doc.find("statusCode");
  if (status == doc.end() || !status->is_number_integer() || *status < 200 || *status > 599) {
    error = "the function's answer has no statusCode of 200-599";
    return false;
  }
  out.status = status->get<int>();
  if (auto headers = doc.find("headers"); headers != doc.end() && !headers->is_null()) {
    if (!headers->is_object()) {
      error = "the function's headers are not an object";
      return false;
    }
    for (const auto& [name, value] : headers->items()) {
      std::string lower = toLower(name);
      if (!isFieldName(lower)) {
        error = "the function's header name '" + name + "' is not a field name";
        return false;
      }
      // A list is a field sent once per value; numbers and booleans as their JSON text.
      std::vector<const json*> values;
      if (value.is_array()) {
        for (const auto& v : value) values.push_back(&v);
      } else {
        values.push_back(&value);
      }
      for (const json* v : values) {
        if (!(v->is_string() || v->is_number() || v->is_boolean())) {
          error = "the function's header " + name + " is not a string";
          return false;
        }
        std::string text = v->is_string() ? v->get<std::string>() : v->dump();
        if (!isFieldValue(text)) {
          error = "the function's header " + name + " holds CR, LF or NUL";
          return false;
        }
        if (isHopByHop(lower) || lower == "content-length") continue;  // the proxy frames the response
        out.headers.emplace_back(lower, std::move(text));
      }
    }
  }
  auto body = doc.find("body");
  if (body != doc.end() && !body->is_null()) {
    if (!body->is_string()) {
      error = "the function's body is not a string";
      return false;
    }
    auto base64 = doc.find("isBase64Encoded");
    if (base64 != doc.end() && !base64->is_null() && !base64->is_boolean()) {
      error = "the function's isBase64Encoded is not a boolean";
      return false;
    }
    const std::string& text = body->get_ref<const std::string&>();
    if (base64 != doc.end() && base64->is_boolean() && base64->get<bool>()) {
      if (!base64Decode(text, out.body)) {
        error = "the function's body is not base64, though isBase64Encoded says it is";
        return false;
      }
    } else {
      out.body = text;
    }
  }
  return true;
}

}  // namespace trellis::proxy
