// key_auth: the client must present a gateway API key (Authorization: Bearer, or x-api-key).
// Keys are compared by SHA-256 digest; the credential is stripped before forwarding so the
// client's key never reaches the upstream.
#include <boost/json.hpp>

#include "filters/registry.h"

namespace ganglion::filters {

namespace {

class KeyAuthFilter final : public http::Filter {
 public:
  KeyAuthFilter(std::shared_ptr<const config::KeyTable> keys, std::vector<std::string> allowed)
      : keys_(std::move(keys)), allowed_(std::move(allowed)) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    // Two credentials are refused, not one picked: a proxy in front may read the other one
    // (the admin API refuses two tokens the same way).
    if (!oneCredential(ctx.request))
      return deny(
          ctx, 401, "invalid_api_key",
          "send one API key: one 'Authorization' or one 'x-api-key' header (or both with the same key)");
    std::string_view key = presentedKey(ctx.request);
    if (key.empty()) {
      return deny(ctx, 401, "missing_api_key",
                  "an API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'");
    }
    auto it = keys_->by_hash.find(sha256(key));
    if (it == keys_->by_hash.end())
      return deny(ctx, 401, "invalid_api_key", fmt::format("the API key {} is not valid", maskKey(key)));
    if (!allowed_.empty() && std::find(allowed_.begin(), allowed_.end(), it->second) == allowed_.end())
      return deny(ctx, 403, "key_not_allowed", "this API key may not use this route");
    ctx.principal = it->second;
    ctx.request.headers.remove("authorization");
    ctx.request.headers.remove("x-api-key");
    return http::FilterStatus::kContinue;
  }
  std::string_view kind() const override { return "key_auth"; }

 private:
  /// At most one Authorization and one x-api-key, and not two different keys.
  static bool oneCredential(const http::RequestHead& req) {
    size_t authorization = 0, api_key = 0;
    for (const auto& h : req.headers) {
      if (iequals(h.name, "authorization")) ++authorization;
      if (iequals(h.name, "x-api-key")) ++api_key;
    }
    if (authorization > 1 || api_key > 1) return false;
    if (authorization == 0 || api_key == 0) return true;
    const std::string_view auth = req.headers.get("authorization");
    return auth.size() > 7 && iequals(auth.substr(0, 7), "bearer ") &&
           trim(auth.substr(7)) == trim(req.headers.get("x-api-key"));
  }
  static std::string_view presentedKey(const http::RequestHead& req) {
    std::string_view auth = req.headers.get("authorization");
    if (auth.size() > 7 && iequals(auth.substr(0, 7), "bearer ")) return trim(auth.substr(7));
    return trim(req.headers.get("x-api-key"));
  }
  /// Enough of a wrong key for its owner to recognise it, never enough to use it.
  /// Only printable ASCII is shown (a key of raw bytes would make the error body invalid
  /// JSON), and nothing of a short key.
  static std::string maskKey(std::string_view key) {
    if (key.size() < 16) return "***";
    auto shown = [](std::string_view part) {
      std::string out(part);
      for (char& c : out)
        if (c < 0x21 || c > 0x7e) c = '*';
      return out;
    };
    return fmt::format("{}***{}", shown(key.substr(0, 3)), shown(key.substr(key.size() - 4)));
  }
  static http::FilterStatus deny(http::FilterContext& ctx, int status, std::string_view type,
                                 std::string_view message) {
    ctx.reply.status = status;
    ctx.reply.type = type;
    ctx.reply.message = message;
    if (status == 401) ctx.reply.headers.set("WWW-Authenticate", "Bearer");
    return http::FilterStatus::kReply;
  }

  std::shared_ptr<const config::KeyTable> keys_;
  std::vector<std::string> allowed_;
};

/// The settings as written, read with keyAuthSchema().
struct KeyAuthSettings {
  std::vector<std::string> keys;          ///< empty: every key
  std::vector<config::Place> key_places;  ///< where each is written: names are checked against `keys` later
};

void readKeyNames(config::Reader& r, const config::Node& v, KeyAuthSettings& s) {
  r.forEach(v, "key_auth.keys", [&](const config::Node& n) {
    if (auto name = r.str(n, "key name")) {
      s.keys.push_back(*name);
      s.key_places.push_back(n.place());
    }
  });
}

const config::Schema<KeyAuthSettings>& keyAuthSchema() {
  static const config::Schema<KeyAuthSettings> schema{
      "key_auth",
      {
          {.name = "keys",
           .kind = config::FieldKind::kCustom,
           .member = {},
           .default_text = "all keys",
           .doc = "Keys allowed on this route, by name.",
           .type_text = "list of key names",
           .read = &readKeyNames,
           .show = &config::showStrings<KeyAuthSettings, &KeyAuthSettings::keys>},
      },
      {},
      "key_auth takes a map (or nothing)"};
  return schema;
}

}  // namespace

FilterPtr buildKeyAuth(const config::Node& node, config::Reader& r, const FilterInputs& inputs,
                       boost::json::object& shown) {
  KeyAuthSettings s;
  const bool written_empty = node.IsNull() || (node.IsScalar() && node.Scalar().empty());  // `- key_auth:`
  if (!written_empty && !readSettings(keyAuthSchema(), node, s, r)) return nullptr;
  for (size_t i = 0; i < s.keys.size(); ++i) {
    const auto& name = s.keys[i];
    if (std::none_of(inputs.keys.begin(), inputs.keys.end(), [&](const auto& k) { return k.name == name; }))
      r.failAt(s.key_places[i], fmt::format("key_auth names unknown key '{}'", name));
  }
  if (inputs.keys.empty()) r.fail(node, "key_auth needs at least one entry under top-level 'keys'");
  if (!inputs.key_table) return nullptr;
  shown = config::fieldsToJson(keyAuthSchema(), s);
  return std::make_shared<KeyAuthFilter>(inputs.key_table, std::move(s.keys));
}

std::string keyAuthDocsTable() { return config::docsTable(keyAuthSchema()); }

}  // namespace ganglion::filters
