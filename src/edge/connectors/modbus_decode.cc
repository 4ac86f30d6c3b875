#include "edge/connectors/modbus_decode.h"

#include <bit>
#include <cmath>
#include <cstring>

namespace ganglion::edge {

namespace {

constexpr std::pair<std::string_view, ModbusTable> kTables[] = {
    {"holding", ModbusTable::kHolding},
    {"input", ModbusTable::kInput},
    {"coil", ModbusTable::kCoil},
    {"discrete", ModbusTable::kDiscrete},
};
constexpr std::pair<std::string_view, RegisterType> kTypes[] = {
    {"int16", RegisterType::kInt16},     {"uint16", RegisterType::kUint16},
    {"int32", RegisterType::kInt32},     {"uint32", RegisterType::kUint32},
    {"float32", RegisterType::kFloat32}, {"float64", RegisterType::kFloat64},
    {"bool", RegisterType::kBool},
};

uint16_t swapBytes(uint16_t r) { return static_cast<uint16_t>((r << 8) | (r >> 8)); }

/// The registers as one unsigned integer, most significant first.
uint64_t combine(std::span<const uint16_t> regs, const RegisterLayout& l) {
  uint64_t v = 0;
  const size_t n = regs.size();
  for (size_t i = 0; i < n; ++i) {
    uint16_t r = regs[l.word_big ? i : n - 1 - i];
    if (!l.byte_big) r = swapBytes(r);
    v = (v << 16) | r;
  }
  return v;
}

void split(uint64_t v, const RegisterLayout& l, std::span<uint16_t> out) {
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) {
    uint16_t r = static_cast<uint16_t>(v >> (16 * (n - 1 - i)));
    if (!l.byte_big) r = swapBytes(r);
    out[l.word_big ? i : n - 1 - i] = r;
  }
}

}  // namespace

std::optional<ModbusTable> modbusTableFromName(std::string_view name) {
  for (const auto& [n, t] : kTables)
    if (n == name) return t;
  return std::nullopt;
}

std::string_view modbusTableName(ModbusTable t) {
  for (const auto& [n, x] : kTables)
    if (x == t) return n;
  return "holding";
}

std::optional<RegisterType> registerTypeFromName(std::string_view name) {
  for (const auto& [n, t] : kTypes)
    if (n == name) return t;
  return std::nullopt;
}

std::string_view registerTypeName(RegisterType t) {
  for (const auto& [n, x] : kTypes)
    if (x == t) return n;
  return "uint16";
}

uint16_t registerWidth(RegisterType type) {
  switch (type) {
    case RegisterType::kInt32:
    case RegisterType::kUint32:
    case RegisterType::kFloat32:
      return 2;
    case RegisterType::kFloat64:
      return 4;
    default:
      return 1;
  }
}

double decodeRegisters(std::span<const uint16_t> regs, const RegisterLayout& l) {
  const uint64_t v = combine(regs.first(registerWidth(l.type)), l);
  switch (l.type) {
    case RegisterType::kInt16:
      return static_cast<int16_t>(v);
    case RegisterType::kUint16:
      return static_cast<uint16_t>(v);
    case RegisterType::kInt32:
      return static_cast<int32_t>(static_cast<uint32_t>(v));
    case RegisterType::kUint32:
      return static_cast<uint32_t>(v);
    case RegisterType::kFloat32:
      return std::bit_cast<float>(static_cast<uint32_t>(v));
    case RegisterType::kFloat64:
      return std::bit_cast<double>(v);
    case RegisterType::kBool:
      return v ? 1 : 0;
  }
  return 0;
}

bool encodeRegisters(double value, const RegisterLayout& l, std::span<uint16_t> out) {
  if (!std::isfinite(value) || out.size() < registerWidth(l.type)) return false;
  out = out.first(registerWidth(l.type));
  auto integer = [&](double lo, double hi) {
    return value == std::trunc(value) && value >= lo && value <= hi;
  };
  uint64_t v = 0;
  switch (l.type) {
    case RegisterType::kInt16:
      if (!integer(-32768, 32767)) return false;
      v = static_cast<uint16_t>(static_cast<int16_t>(value));
      break;
    case RegisterType::kUint16:
      if (!integer(0, 65535)) return false;
      v = static_cast<uint16_t>(value);
      break;
    case RegisterType::kInt32:
      if (!integer(-2147483648.0, 2147483647.0)) return false;
      v = static_cast<uint32_t>(static_cast<int32_t>(value));
      break;
    case RegisterType::kUint32:
      if (!integer(0, 4294967295.0)) return false;
      v = static_cast<uint32_t>(value);
      break;
    case RegisterType::kFloat32:
      if (std::fabs(value) > 3.4028234663852886e38) return false;
      v = std::bit_cast<uint32_t>(static_cast<float>(value));
      break;
    case RegisterType::kFloat64:
      v = std::bit_cast<uint64_t>(value);
      break;
    case RegisterType::kBool:
      if (value != 0 && value != 1) return false;
      v = value != 0;
      break;
  }
  split(v, l, out);
  return true;
}

}  // namespace ganglion::edge
