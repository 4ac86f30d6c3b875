#include "edge/sinks/tsdb.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse_query.hpp>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <variant>
#include <vector>

#include "base/json_text.h"
#include "base/strings.h"
#include "edge/sinks/record_batch.h"

namespace ganglion::edge {

namespace json = boost::json;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS records("
    " id TEXT NOT NULL UNIQUE, ts INTEGER NOT NULL, source TEXT NOT NULL, device TEXT NOT NULL,"
    " metric TEXT NOT NULL, kind TEXT NOT NULL, record TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS records_series_ts ON records(device, metric, ts);"
    "CREATE INDEX IF NOT EXISTS records_ts ON records(ts);";

Error badParameter(std::string message) { return Error(std::move(message), "invalid_parameter", 400); }

std::optional<int64_t> wholeNumber(std::string_view s) {
  int64_t v = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string textOf(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

Result<TsdbQuery> parseTsdbQuery(std::string_view query_string) {
  TsdbQuery q;
  if (query_string.empty()) return q;
  auto parsed = boost::urls::parse_query(query_string);
  if (!parsed) return badParameter("the query string is not well-formed");
  std::vector<std::string> seen;  // every parameter once: which of two would count is a guess
  for (const auto& p : *parsed) {
    const std::string key = p.key.decode();
    const std::string value = p.value.decode();
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      return badParameter(fmt::format("{} is given twice", printableText(key, 64)));
    if (seen.size() < 16) seen.push_back(key);
    if (key == "device" || key == "metric" || key == "source" || key == "kind") {
      std::optional<std::string>& slot = key == "device"   ? q.device
                                         : key == "metric" ? q.metric
                                         : key == "source" ? q.source
                                                           : q.kind;
      slot = value;
    } else if (key == "from" || key == "to") {
      auto n = wholeNumber(value);
      if (!n)
        return badParameter(fmt::format("{} must be a time in epoch milliseconds, got '{}'", key, value));
      (key == "from" ? q.from : q.to) = *n;
    } else if (key == "limit") {
      auto n = wholeNumber(value);
      if (!n || *n < 1 || *n > TsdbQuery::kMaxLimit)
        return badParameter(fmt::format("limit must be a whole number from 1 to {}", TsdbQuery::kMaxLimit));
      q.limit = static_cast<uint32_t>(*n);
    } else if (key == "order") {
      if (value != "asc" && value != "desc") return badParameter("order must be asc or desc");
      q.newest_first = value == "desc";
    } else if (key == "every") {
      auto d = parseDuration(value);
      if (!d || d->count() < 1 || d->count() > 366LL * 24 * 3600 * 1000)
        return badParameter(
            fmt::format("every must be a duration from 1ms to 8784h (1m, 1h), got '{}'", value));
      q.every_ms = d->count();
    } else if (key == "field") {
      const bool name =
          !value.empty() && value.size() <= 64 && !std::isdigit(static_cast<unsigned char>(value[0])) &&
          std::all_of(value.begin(), value.end(),
                      [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
      if (!name)
        return badParameter("field must be a record's number member: letters, digits and _ (value, mean)");
      q.field = value;
    } else if (key == "after") {
      const size_t dot = value.find('.');
      auto ts = wholeNumber(std::string_view(value).substr(0, dot));
      auto row =
          dot == std::string::npos ? std::nullopt : wholeNumber(std::string_view(value).substr(dot + 1));
      if (!ts || !row) return badParameter("after must be the next_after of a previous page");
      q.after = std::make_pair(*ts, *row);
    } else {
      return badParameter(
          fmt::format("unknown parameter '{}' (known: device, metric, source, kind, from, to, limit, order, "
                      "after, every, "
                      "field)",
                      key));
    }
  }
  if (q.from && q.to && *q.to <= *q.from) return badParameter("to must be after from");
  if (q.after && q.every_ms)
    return badParameter("after pages records, not buckets: narrow from and to instead");
  if (q.field != "value" && !q.every_ms)
    return badParameter("field goes with every (what buckets aggregate)");
  return q;
}

Result<std::unique_ptr<TsdbStore>> TsdbStore::open(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Error(fmt::format("{}: cannot make its directory: {}", path, ec.message()));
  auto db = store::Database::open(path);
  if (!db) return db.error();
  if (auto ok = (*db)->exec(kSchema); !ok) return ok.error();
  return std::unique_ptr<TsdbStore>(new TsdbStore(std::move(*db)));
}

Result<TsdbStore::Written> TsdbStore::write(std::string_view records_json) {
  Written w;
  if (auto ok = db_->exec("BEGIN IMMEDIATE"); !ok) return ok.error();
  auto insert = db_->prepare(
      "INSERT OR IGNORE INTO records(id, ts, source, device, metric, kind, record) "
      "VALUES(?1,?2,?3,?4,?5,?6,?7)");
  if (!insert) {
    (void)db_->exec("ROLLBACK");
    return insert.error();
  }
  std::optional<Error> failed;
  std::string error;
  const bool whole = forEachRecord(
      records_json,
      [&](std::string_view text, const json::object* o) {
        if (failed) return;
        const json::value* ts = o ? o->if_contains("ts") : nullptr;
        const std::string id = o ? textOf(*o, "id") : std::string();
        if (!ts || !ts->is_int64() || id.empty()) {
          if (!w.unusable++) w.unusable_reason = "a record without an id or an integer ts";
          return;
        }
        insert->reset();
        insert->bind(1, id)
            .bind(2, ts->get_int64())
            .bind(3, textOf(*o, "source"))
            .bind(4, textOf(*o, "device"))
            .bind(5, textOf(*o, "metric"))
            .bind(6, textOf(*o, "kind"))
            .bind(7, text);
        auto step = insert->step();
        if (!step) {
          failed = step.error();
          return;
        }
        if (db_->changes() == 1)
          ++w.stored;
        else
          ++w.duplicates;
      },
      error);
  if (!whole && !w.unusable++) w.unusable_reason = error;
  if (failed) {
    (void)db_->exec("ROLLBACK");
    return *failed;
  }
  if (auto ok = db_->exec("COMMIT"); !ok) {
    (void)db_->exec("ROLLBACK");
    return ok.error();
  }
  return w;
}

Result<uint64_t> TsdbStore::prune(int64_t before_ms) {
  auto del = db_->prepare("DELETE FROM records WHERE ts < ?1");
  if (!del) return del.error();
  del->bind(1, before_ms);
  if (auto step = del->step(); !step) return step.error();
  return static_cast<uint64_t>(db_->changes());
}

namespace {

/// The buckets of `q` over the rows `filtered` (a SELECT of device, metric, ts and the
/// field as v, with its WHERE) selects.
Result<std::string> buckets(store::Database& db, const TsdbQuery& q, const std::string& filtered,
                            const std::vector<std::variant<std::string, int64_t>>& binds) {
  // Floor division: a bucket of a time before 1970 starts at or before it, too.
  const std::string sql = fmt::format(
      "SELECT device, metric, ts - (((ts % {0}) + {0}) % {0}) AS bucket, count(v), avg(v), min(v), max(v), "
      "sum(v) FROM ({1}) WHERE typeof(v) IN ('integer', 'real') GROUP BY device, metric, bucket "
      "ORDER BY bucket {2}, device, metric LIMIT {3}",
      q.every_ms, filtered, q.newest_first ? "DESC" : "ASC", q.limit);
  auto select = db.prepare(sql);
  if (!select) return select.error();
  for (size_t i = 0; i < binds.size(); ++i)
    std::visit([&](const auto& v) { select->bind(static_cast<int>(i + 1), v); }, binds[i]);
  std::string body = "{\"buckets\":[";
  uint32_t count = 0;
  for (;;) {
    auto step = select->step();
    if (!step) return step.error();
    if (*step == store::Statement::Step::kDone) break;
    if (count++) body.push_back(',');
    json::object b;
    b["device"] = select->text(0);
    b["metric"] = select->text(1);
    b["ts"] = select->integer(2);
    b["count"] = select->integer(3);
    b["mean"] = select->real(4);
    b["min"] = select->real(5);
    b["max"] = select->real(6);
    b["sum"] = select->real(7);
    body += jsonText(b);  // 4.5 and 0, not boost::json's 4.5E0 and 0E0
  }
  fmt::format_to(std::back_inserter(body), "],\"count\":{}}}\n", count);
  return body;
}

}  // namespace

Result<uint64_t> TsdbStore::shrinkTo(uint64_t max_bytes) {
  // A value of one statement (0 when it gives no row).
  auto scalar = [&](const char* sql) -> Result<int64_t> {
    auto st = db_->prepare(sql);
    if (!st) return st.error();
    auto step = st->step();
    if (!step) return step.error();
    return *step == store::Statement::Step::kRow ? st->integer(0) : 0;
  };
  // The file's pages in use (checked after every write: pragmas, no scan).
  auto used_bytes = scalar(
      "SELECT (p.page_count - f.freelist_count) * s.page_size "
      "FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s");
  if (!used_bytes) return used_bytes.error();
  const auto used = static_cast<uint64_t>(*used_bytes);
  if (used <= max_bytes) return uint64_t{0};
  auto records = scalar("SELECT count(*) FROM records");  // a scan: only when over the cap
  if (!records) return records.error();
  const auto total = static_cast<uint64_t>(*records);
  // Down to 90 %, by the share of the records that much is (records are of about one size).
  const double share = static_cast<double>(used - max_bytes * 9 / 10) / static_cast<double>(used);
  const auto n = std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(total) * share + 0.5));
  auto del = db_->prepare(
      "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records ORDER BY "
      "CASE kind WHEN 'reading' THEN 0 WHEN 'window' THEN 1 ELSE 2 END, ts LIMIT ?1)");
  if (!del) return del.error();
  del->bind(1, static_cast<int64_t>(n));
  if (auto step = del->step(); !step) return step.error();
  return static_cast<uint64_t>(db_->changes());
}

Result<std::string> TsdbStore::query(const std::string& path, const TsdbQuery& q) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return std::string(q.every_ms ? "{\"buckets\":[],\"count\":0}" : "{\"records\":[],\"count\":0}");
  auto db = store::Database::open(path);
  if (!db) return db.error();
  std::string sql = q.every_ms
                        ? fmt::format(
                              "SELECT device, metric, ts, json_extract(record, '$.{}') AS v FROM records "
                              "WHERE 1",
                              q.field)
                        : std::string("SELECT record, ts, rowid FROM records WHERE 1");
  std::vector<std::variant<std::string, int64_t>> binds;  // ?1, ?2, ... in order
  auto text = [&](const char* column, const std::optional<std::string>& v) {
    if (!v) return;
    binds.emplace_back(*v);
    sql += fmt::format(" AND {} = ?{}", column, binds.size());
  };
  auto number = [&](std::string_view condition, int64_t v) {
    binds.emplace_back(v);
    sql += fmt::format(" AND {}?{}", condition, binds.size());
  };
  text("device", q.device);
  text("metric", q.metric);
  text("source", q.source);
  text("kind", q.kind);
  if (q.from) number("ts >= ", *q.from);
  if (q.to) number("ts < ", *q.to);
  if (q.after) {
    binds.emplace_back(q.after->first);
    binds.emplace_back(q.after->second);
    sql += fmt::format(" AND (ts {0} ?{1} OR (ts = ?{1} AND rowid {0} ?{2}))", q.newest_first ? "<" : ">",
                       binds.size() - 1, binds.size());
  }
  if (q.every_ms) return buckets(**db, q, sql, binds);
  sql += q.newest_first ? " ORDER BY ts DESC, rowid DESC" : " ORDER BY ts ASC, rowid ASC";
  sql += fmt::format(" LIMIT {}", q.limit);
  auto select = (*db)->prepare(sql);
  if (!select) return select.error();
  for (size_t i = 0; i < binds.size(); ++i)
    std::visit([&](const auto& v) { select->bind(static_cast<int>(i + 1), v); }, binds[i]);
  std::string body = "{\"records\":[";
  uint32_t count = 0;
  int64_t last_ts = 0, last_row = 0;
  for (;;) {
    auto step = select->step();
    if (!step) return step.error();
    if (*step == store::Statement::Step::kDone) break;
    if (count++) body.push_back(',');
    body += select->text(0);
    last_ts = select->integer(1);
    last_row = select->integer(2);
  }
  fmt::format_to(std::back_inserter(body), "],\"count\":{}", count);
  if (count == q.limit)
    fmt::format_to(std::back_inserter(body), ",\"next_after\":\"{}.{}\"", last_ts, last_row);
  body += "}\n";
  return body;
}

}  // namespace ganglion::edge
