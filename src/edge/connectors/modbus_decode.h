// Modbus register maps: which table a value lives in, how many 16-bit registers it spans, and
// how its bytes are ordered. Pure functions, so every byte and word order is unit-tested (the
// classic Modbus bug is a float read with its words swapped).
//
// Modbus sends each register big-endian on the wire; libmodbus hands them over as host
// uint16_t values. `byte_order: little` swaps the two bytes of each register; `word_order:
// little` puts the least significant register first (the "CDAB" layout many PLCs use for
// 32-bit values).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ganglion::edge {

enum class ModbusTable : uint8_t { kHolding, kInput, kCoil, kDiscrete };
enum class RegisterType : uint8_t { kInt16, kUint16, kInt32, kUint32, kFloat32, kFloat64, kBool };

std::optional<ModbusTable> modbusTableFromName(std::string_view name);
std::string_view modbusTableName(ModbusTable t);
std::optional<RegisterType> registerTypeFromName(std::string_view name);
std::string_view registerTypeName(RegisterType t);
inline constexpr std::string_view kModbusTableNames = "holding, input, coil, discrete";
inline constexpr std::string_view kRegisterTypeNames = "int16, uint16, int32, uint32, float32, float64, bool";

/// Registers (or bits, for coils and discrete inputs) a value of `type` spans.
uint16_t registerWidth(RegisterType type);

struct RegisterLayout {
  RegisterType type = RegisterType::kUint16;
  bool byte_big = true;  ///< within a register
  bool word_big = true;  ///< most significant register first
};

/// The raw value of `regs` (registerWidth(layout.type) of them), before scale and offset. A
/// float that is NaN or infinite is returned as such (the caller refuses it).
double decodeRegisters(std::span<const uint16_t> regs, const RegisterLayout& layout);

/// The registers that hold `value` (for writes), the inverse of decodeRegisters; false when
/// `value` does not fit the type (out of range, not an integer for integer types).
bool encodeRegisters(double value, const RegisterLayout& layout, std::span<uint16_t> out);

}  // namespace ganglion::edge
