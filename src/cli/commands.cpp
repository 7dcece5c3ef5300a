#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "common/strings.h"
#include "common/time.h"
#include "gateway/manifest.h"
#include "gateway/reconcile.h"
#include "model/config.h"
#include "model/ids.h"
#include "tls/certificates.h"

namespace trellis::cli {

using nlohmann::json;

int parseArgs(const std::vector<std::string>& argv, Options& out, std::ostream& stdOut, std::ostream& stdErr) {
  CLI::App app{"trellis: inspect a Trellis (VPC Lattice) control plane"};
  app.name(argv.empty() ? "trellis" : argv[0]);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand too
  app.add_option("--endpoint", out.endpoint, "API endpoint, http:// or https:// (default $TRELLIS_ENDPOINT or http://127.0.0.1:8440)");
  app.add_option("--config", out.configPath, "trellisd's YAML config; its first identity signs requests")
      ->check(CLI::ExistingFile);
  app.add_option("--region", out.region, "signing region");
  app.add_option("-o,--output", out.output, "output format")->check(CLI::IsMember({"table", "json"}));

  auto* get = app.add_subcommand("get", "list resources (follows pagination)");
  get->add_option(
         "resource", out.resource,
         "servicenetworks | services | targetgroups | listeners SVC | rules SVC LISTENER | targets TG | proxies | "
         "gateways | httproutes | grpcroutes (-n NS, -A)")
      ->required();
  get->add_option("parents", out.args, "parent identifiers");
  get->add_option("-n,--namespace", out.ns, "namespace of gateways, httproutes, grpcroutes")->capture_default_str();
  get->add_flag("-A,--all-namespaces", out.allNamespaces, "gateways, httproutes, grpcroutes of every namespace");
  auto* describe = app.add_subcommand("describe", "show one resource by id or ARN");
  std::string identifier;
  describe->add_option("identifier", identifier, "sn-…, svc-…, tg-…, snsa-…, snva-…, als-…, or any Lattice ARN")
      ->required();

  // Certificates (HTTPS listeners): local commands on trellisd's data dir.
  auto* ca = app.add_subcommand("ca", "Trellis's certificate authority (signs the generated names' certificates)");
  ca->require_subcommand(1);
  auto* caExport = ca->add_subcommand("export", "print the root CA certificate (PEM) for clients to trust");
  auto* cert = app.add_subcommand("cert", "certificates for custom domain names (a service's certificateArn)");
  cert->require_subcommand(1);
  auto* certImport = cert->add_subcommand("import", "store a certificate and its key; prints the ARN to use");
  certImport->add_option("--cert", out.certificateFile, "PEM certificate, then its chain")
      ->required()
      ->check(CLI::ExistingFile);
  certImport->add_option("--key", out.keyFile, "PEM private key (unencrypted)")->required()->check(CLI::ExistingFile);
  for (auto* local : {caExport, certImport}) {
    local->add_option("--data-dir", out.dataDir, "trellisd's --data-dir")->capture_default_str();
  }

  // Kubernetes Gateway API manifests, translated as the AWS Gateway API controller does.
  auto* apply = app.add_subcommand("apply", "create or update what Kubernetes Gateway API manifests describe");
  auto* del = app.add_subcommand("delete", "remove what `trellis apply` made for the manifests");
  for (auto* sub : {apply, del}) {
    sub->add_option("-f,--filename", out.files, "YAML file, directory of them, or - for stdin (repeatable)")
        ->required();
    sub->add_option("--cluster", out.clusterName, "cluster name in the ManagedBy tag")->capture_default_str();
    sub->add_option("--vpc", out.vpc, "the cluster's VPC (default: the --config's first VPC, else the "
                                      "development VPC)");
  }

  std::vector<const char*> raw;
  for (const auto& a : argv) raw.push_back(a.c_str());
  if (raw.empty()) raw.push_back("trellis");
  try {
    app.parse(static_cast<int>(raw.size()), raw.data());
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e, stdOut, stdErr);
    return code == 0 ? 0 : 2;
  }
  if (get->parsed()) out.command = "get";
  if (apply->parsed()) out.command = "apply";
  if (del->parsed()) out.command = "delete";
  if (caExport->parsed()) out.command = "ca-export";
  if (certImport->parsed()) out.command = "cert-import";
  if (describe->parsed()) {
    out.command = "describe";
    out.args = {identifier};
  }
  return -1;
}

namespace {

const std::vector<Column> kServiceNetworkColumns = {{"ID", "id"},
                                                    {"NAME", "name"},
                                                    {"SERVICES", "numberOfAssociatedServices"},
                                                    {"VPCS", "numberOfAssociatedVPCs"},
                                                    {"CREATED", "createdAt"}};
const std::vector<Column> kServiceColumns = {
    {"ID", "id"}, {"NAME", "name"}, {"STATUS", "status"}, {"DNS", "dnsEntry.domainName"}, {"CREATED", "createdAt"}};
const std::vector<Column> kTargetGroupColumns = {{"ID", "id"},         {"NAME", "name"},     {"TYPE", "type"},
                                                 {"PROTOCOL", "protocol"}, {"PORT", "port"}, {"STATUS", "status"},
                                                 {"VPC", "vpcIdentifier"}};
const std::vector<Column> kListenerColumns = {
    {"ID", "id"}, {"NAME", "name"}, {"PROTOCOL", "protocol"}, {"PORT", "port"}, {"CREATED", "createdAt"}};
const std::vector<Column> kRuleColumns = {
    {"ID", "id"}, {"NAME", "name"}, {"PRIORITY", "priority"}, {"DEFAULT", "isDefault"}};
const std::vector<Column> kTargetColumns = {
    {"ID", "id"}, {"PORT", "port"}, {"STATUS", "status"}, {"REASON", "reasonCode"}};
const std::vector<Column> kProxyColumns = {{"ID", "id"},
                                           {"ADDRESS", "address"},
                                           {"REVISION", "revision"},
                                           {"LAG", "lagRevisions"},
                                           {"LAST SEEN", "lastSeen"}};

std::string segment(const std::string& identifier) { return percentEncode(identifier); }

// Collection path of each top-level kind, keyed by the ARN resource-type word (model::kindName).
const std::map<std::string, std::string, std::less<>> kCollections = {
    {"servicenetwork", "/servicenetworks"},
    {"service", "/services"},
    {"targetgroup", "/targetgroups"},
    {"servicenetworkserviceassociation", "/servicenetworkserviceassociations"},
    {"servicenetworkvpcassociation", "/servicenetworkvpcassociations"},
    {"accesslogsubscription", "/accesslogsubscriptions"},
    {"servicenetworkresourceassociation", "/servicenetworkresourceassociations"},
    {"resourcegateway", "/resourcegateways"},
    {"resourceconfiguration", "/resourceconfigurations"},
    {"resourceendpointassociation", "/resourceendpointassociations"},
    {"domainverification", "/domainverifications"},
};

constexpr model::Kind kAllKinds[] = {
    model::Kind::ServiceNetwork,
    model::Kind::Service,
    model::Kind::Listener,
    model::Kind::Rule,
    model::Kind::TargetGroup,
    model::Kind::ServiceNetworkServiceAssociation,
    model::Kind::ServiceNetworkVpcAssociation,
    model::Kind::AccessLogSubscription,
    model::Kind::ServiceNetworkResourceAssociation,
    model::Kind::ResourceGateway,
    model::Kind::ResourceConfiguration,
    model::Kind::ResourceEndpointAssociation,
    model::Kind::DomainVerification,
};

// A field by dotted path, or nullptr.
const json* lookupField(const json& item, const std::string& path) {
  const json* cur = &item;
  for (auto part : split(path, '.')) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(std::string(part));
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string cellText(const json* value) {
  if (value == nullptr || value->is_null()) return "-";
  if (value->is_string()) return value->get<std::string>();
  return value->dump();
}

void flatten(const json& value, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (value.is_object() && !value.empty()) {
    for (auto it = value.begin(); it != value.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else {
    out.emplace_back(prefix, cellText(&value));
  }
}

std::string renderRows(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace

bool planList(const std::string& resource, const std::vector<std::string>& args, ListPlan& out, std::string& error) {
  struct Spec {
    const char* name;
    size_t parents;
    const char* usage;
  };
  static const Spec specs[] = {
      {"servicenetworks", 0, "get servicenetworks"},       {"services", 0, "get services"},
      {"targetgroups", 0, "get targetgroups"},             {"listeners", 1, "get listeners SERVICE"},
      {"rules", 2, "get rules SERVICE LISTENER"},          {"targets", 1, "get targets TARGETGROUP"},
      {"proxies", 0, "get proxies"},
  };
  const Spec* spec = nullptr;
  for (const auto& s : specs)
    if (resource == s.name) spec = &s;
  if (spec == nullptr) {
    error = "unknown resource '" + resource +
            "': expected servicenetworks, services, targetgroups, listeners, rules, targets or proxies";
    return false;
  }
  if (args.size() != spec->parents) {
    error = std::string("usage: trellis ") + spec->usage;
    return false;
  }
  out = ListPlan{};
  out.request.method = "GET";
  if (resource == "servicenetworks") {
    out.request.path = "/servicenetworks";
    out.columns = kServiceNetworkColumns;
  } else if (resource == "services") {
    out.request.path = "/services";
    out.columns = kServiceColumns;
  } else if (resource == "targetgroups") {
    out.request.path = "/targetgroups";
    out.columns = kTargetGroupColumns;
  } else if (resource == "listeners") {
    out.request.path = "/services/" + segment(args[0]) + "/listeners";
    out.columns = kListenerColumns;
  } else if (resource == "rules") {
    out.request.path = "/services/" + segment(args[0]) + "/listeners/" + segment(args[1]) + "/rules";
    out.columns = kRuleColumns;
  } else if (resource == "proxies") {
    out.request.path = "/_trellis/v1/proxies";  // the data-plane hosts following this API server (docs/fleet.md)
    out.columns = kProxyColumns;
  } else {
    out.request.method = "POST";  // ListTargets takes an optional target filter in its body
    out.request.path = "/targetgroups/" + segment(args[0]) + "/listtargets";
    out.request.body = "{}";
    out.columns = kTargetColumns;
  }
  return true;
}

bool planDescribe(const std::string& identifier, ApiRequest& out, std::string& error) {
  out = ApiRequest{"GET", "", ""};
  if (startsWith(identifier, "arn:")) {
    auto arn = model::parseArn(identifier);
    if (!arn || arn->service != "vpc-lattice") {
      error = "'" + identifier + "' is not a VPC Lattice ARN";
      return false;
    }
    auto parts = split(arn->resource, '/');
    auto collection = kCollections.find(parts[0]);
    bool ok = collection != kCollections.end() && parts.size() >= 2 && !parts[1].empty();
    if (ok && parts.size() == 2) {
      out.path = collection->second + "/" + segment(std::string(parts[1]));
      return true;
    }
    // service/svc-…/listener/listener-…[/rule/rule-…]
    if (ok && parts[0] == "service" && parts.size() >= 4 && parts[2] == "listener" && !parts[3].empty()) {
      out.path = "/services/" + segment(std::string(parts[1])) + "/listeners/" + segment(std::string(parts[3]));
      if (parts.size() == 4) return true;
      if (parts.size() == 6 && parts[4] == "rule" && !parts[5].empty()) {
        out.path += "/rules/" + segment(std::string(parts[5]));
        return true;
      }
    }
    error = "cannot describe ARN '" + identifier + "': unknown resource '" + arn->resource + "'";
    return false;
  }
  size_t dash = identifier.find('-');
  std::string prefix = identifier.substr(0, dash);
  for (model::Kind kind : kAllKinds) {
    if (dash == std::string::npos || prefix != model::idPrefix(kind)) continue;
    if (kind == model::Kind::Listener || kind == model::Kind::Rule) {
      error = "a " + prefix + " id alone does not say which service it belongs to: describe it by ARN, or use "
              "'trellis get " + (kind == model::Kind::Listener ? "listeners SERVICE" : "rules SERVICE LISTENER") + "'";
      return false;
    }
    out.path = kCollections.at(std::string(model::kindName(kind))) + "/" + segment(identifier);
    return true;
  }
  error = "cannot tell what '" + identifier + "' is: expected an ARN or an id starting with sn-, svc-, tg-, snsa-, "
          "snva-, als-, snra-, rgw-, rcfg-, rea- or dv-";
  return false;
}

std::string formatTable(const json& items, const std::vector<Column>& columns) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  for (const auto& c : columns) header.push_back(c.header);
  rows.push_back(std::move(header));
  if (items.is_array())
    for (const auto& item : items) {
      std::vector<std::string> row;
      for (const auto& c : columns) row.push_back(cellText(lookupField(item, c.field)));
      rows.push_back(std::move(row));
    }
  return renderRows(rows);
}

std::string formatObject(const json& object) {
  std::vector<std::pair<std::string, std::string>> fields;
  flatten(object, "", fields);
  std::vector<std::vector<std::string>> rows{{"FIELD", "VALUE"}};
  for (auto& [k, v] : fields) rows.push_back({k, v});
  return renderRows(rows);
}

bool resolveSettings(const Options& options, const EnvLookup& env, Settings& out, std::string& error) {
  auto var = [&](const char* name) -> std::string {
    const char* v = env(name);
    return v ? std::string(v) : std::string();
  };
  std::string url = !options.endpoint.empty() ? options.endpoint : var("TRELLIS_ENDPOINT");
  if (url.empty()) url = kDefaultEndpoint;
  auto endpoint = parseEndpoint(url, error);
  if (!endpoint) return false;
  out.endpoint = *endpoint;

  std::string configRegion;
  if (!options.configPath.empty()) {
    try {
      model::Config config = model::loadConfig(options.configPath);
      if (config.identities.empty()) {
        error = options.configPath +
                " defines no identities: use the development keys trellisd printed at start "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) instead of --config";
        return false;
      }
      const auto& id = config.identities.front();
      out.credentials = {id.accessKeyId, id.secretAccessKey, id.sessionToken};
      configRegion = config.region;
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
  } else {
    out.credentials = {var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), var("AWS_SESSION_TOKEN")};
    if (out.credentials.accessKeyId.empty() || out.credentials.secretAccessKey.empty()) {
      error = "no credentials: pass --config FILE (trellisd's config) or set AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY";
      return false;
    }
  }
  for (const std::string& candidate : {options.region, configRegion, var("AWS_REGION"), var("AWS_DEFAULT_REGION")})
    if (!candidate.empty()) {
      out.region = candidate;
      return true;
    }
  out.region = "us-east-1";
  return true;
}

ApiError apiErrorOf(const HttpResult& response) {
  ApiError e;
  e.status = response.status;
  json body = json::parse(response.body, nullptr, false);
  if (const std::string* type = response.header("x-amzn-errortype")) e.type = type->substr(0, type->find(':'));
  if (body.is_object()) {
    if (e.type.empty() && body.contains("__type") && body["__type"].is_string()) {
      std::string t = body["__type"];
      e.type = t.substr(t.find('#') == std::string::npos ? 0 : t.find('#') + 1);
    }
    if (e.type.empty() && body.contains("code") && body["code"].is_string()) e.type = body["code"];
    for (const char* key : {"message", "Message"})
      if (e.message.empty() && body.contains(key) && body[key].is_string()) e.message = body[key];
  } else {
    e.message = response.body.substr(0, 200);
  }
  if (e.type.empty()) e.type = "HTTP " + std::to_string(response.status);
  return e;
}

namespace {

struct ApiFailure {
  ApiError error;
};

// One signed API call; throws ApiFailure on a non-2xx answer, std::runtime_error on transport trouble.
json call(const Settings& settings, const ApiRequest& request, const std::string& query) {
  std::string path = settings.endpoint.basePath + request.path;
  HeaderList headers{{"user-agent", "trellis-cli/0.1"}};
  if (!request.body.empty()) headers.emplace_back("content-type", "application/json");
  auth::signRequest(request.method, settings.endpoint.hostHeader, path, query, headers, request.body,
                    settings.credentials, settings.region,
                    startsWith(request.path, "/_trellis/") ? "trellis" : "vpc-lattice", systemNow());
  HttpResult response = httpExchange(settings.endpoint, request.method, query.empty() ? path : path + "?" + query,
                                     headers, request.body);
  if (response.status < 200 || response.status >= 300) throw ApiFailure{apiErrorOf(response)};
  if (response.body.empty()) return json::object();
  json body = json::parse(response.body, nullptr, false);
  if (body.is_discarded())
    throw std::runtime_error("the API answered " + std::to_string(response.status) + " with a body that is not JSON");
  return body;
}

}  // namespace

bool isGatewayResource(const std::string& resource) {
  return resource == "gateways" || resource == "gateway" || resource == "httproutes" || resource == "httproute" ||
         resource == "grpcroutes" || resource == "grpcroute";
}

namespace {

// The Gateway API reconciler's view of the API: the CLI's signed calls.
class SignedApi : public gateway::LatticeApi {
 public:
  explicit SignedApi(const Settings& settings) : settings_(settings) {}
  json call(const std::string& method, const std::string& path, const std::string& query, const json& body) override {
    try {
      return cli::call(settings_, ApiRequest{method, path, body.is_null() ? "" : body.dump()}, query);
    } catch (const ApiFailure& f) {
      throw gateway::ApiCallError(f.error.status, f.error.type, method + " " + path + ": " + f.error.message);
    }
  }

 private:
  const Settings& settings_;
};

int runGateway(const Options& options, const Settings& settings, std::ostream& stdOut, std::ostream& stdErr) {
  gateway::Options translation;
  translation.clusterName = options.clusterName;
  translation.accountId.clear();  // from the config, else from the ARNs in Lattice
  translation.vpcId = options.vpc;
  if (!options.configPath.empty()) {
    model::Config config = model::loadConfig(options.configPath);
    translation.accountId = config.accountId;
    if (translation.vpcId.empty() && !config.vpcs.empty()) translation.vpcId = config.vpcs.front().id;
  }
  if (translation.vpcId.empty()) translation.vpcId = gateway::Options{}.vpcId;
  SignedApi api(settings);
  gateway::Reconciler reconciler(api, translation);
  if (options.command == "get") {
    std::string kind = startsWith(options.resource, "gateway") ? "Gateway"
                       : startsWith(options.resource, "http")  ? "HTTPRoute"
                                                               : "GRPCRoute";
    json list = reconciler.get(kind, options.allNamespaces ? "" : options.ns);
    if (options.output == "json")
      stdOut << list.dump(2) << "\n";
    else if (list["items"].empty())
      stdOut << "No resources found" << (options.allNamespaces ? "" : " in " + options.ns + " namespace") << ".\n";
    else
      stdOut << gateway::formatStatusTable(list, options.allNamespaces);
    return 0;
  }
  auto objects = gateway::loadManifests(options.files, std::cin);
  auto report = options.command == "apply" ? reconciler.apply(objects) : reconciler.remove(objects);
  for (const auto& w : report.warnings) stdErr << "Warning: " << w << "\n";
  for (const auto& line : report.lines) stdOut << line << "\n";
  return 0;
}

}  // namespace

bool isLocalCommand(const Options& options) {
  return options.command == "ca-export" || options.command == "cert-import";
}

int runLocal(const Options& options, const EnvLookup& env, std::ostream& stdOut, std::ostream& stdErr) {
  auto readAll = [](const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream text;
    text << in.rdbuf();
    out = text.str();
    return true;
  };
  if (options.command == "ca-export") {
    std::string path = options.dataDir + "/tls/ca.pem", pem;
    if (!readAll(path, pem)) {
      stdErr << "trellis: no CA at " << path << ": trellisd creates it on its first start (is --data-dir right?)\n";
      return 1;
    }
    stdOut << pem;
    return 0;
  }
  // cert import: the ARN names the account and region of trellisd's config, like ACM's would.
  model::Config config;
  try {
    if (!options.configPath.empty()) config = model::loadConfig(options.configPath);
  } catch (const std::exception& e) {
    stdErr << "trellis: " << e.what() << "\n";
    return 2;
  }
  std::string region = options.region;
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (region.empty() && options.configPath.empty() && env(name)) region = env(name);
  }
  if (region.empty()) region = config.region;
  std::string certificate, key, error;
  if (!readAll(options.certificateFile, certificate) || !readAll(options.keyFile, key)) {
    stdErr << "trellis: cannot read " << options.certificateFile << " or " << options.keyFile << "\n";
    return 1;
  }
  std::string arn = tls::importCertificate(options.dataDir, certificate, key, region, config.accountId, error);
  if (arn.empty()) {
    stdErr << "trellis: " << error << "\n";
    return 1;
  }
  stdOut << arn << "\n";
  return 0;
}

int run(const Options& options, const Settings& settings, std::ostream& stdOut, std::ostream& stdErr) {
  try {
    if (options.command == "apply" || options.command == "delete" ||
        (options.command == "get" && isGatewayResource(options.resource)))
      return runGateway(options, settings, stdOut, stdErr);
    if (options.command == "describe") {
      ApiRequest request;
      std::string error;
      if (!planDescribe(options.args.at(0), request, error)) {
        stdErr << "trellis: " << error << "\n";
        return 2;
      }
      json object = call(settings, request, "");
      stdOut << (options.output == "json" ? object.dump(2) + "\n" : formatObject(object));
      return 0;
    }
    ListPlan plan;
    std::string error;
    if (!planList(options.resource, options.args, plan, error)) {
      stdErr << "trellis: " << error << "\n";
      return 2;
    }
    json items = json::array();
    std::set<std::string> seenTokens;
    std::string token;
    do {
      json page = call(settings, plan.request, token.empty() ? "" : "nextToken=" + percentEncode(token));
      if (page.contains("items") && page["items"].is_array())
        for (auto& item : page["items"]) items.push_back(std::move(item));
      token = page.contains("nextToken") && page["nextToken"].is_string() ? page["nextToken"].get<std::string>() : "";
      if (!token.empty() && !seenTokens.insert(token).second)
        throw std::runtime_error("the API returned the same nextToken twice; stopping");
    } while (!token.empty());
    stdOut << (options.output == "json" ? json{{"items", items}}.dump(2) + "\n" : formatTable(items, plan.columns));
    return 0;
  } catch (const gateway::ManifestError& e) {
    stdErr << "trellis: error: " << e.what() << "\n";
    return 1;
  } catch (const ApiFailure& f) {
    stdErr << "trellis: " << f.error.type << " (HTTP " << f.error.status << "): " << f.error.message << "\n";
    return 1;
  } catch (const std::exception& e) {
    stdErr << "trellis: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace trellis::cli
