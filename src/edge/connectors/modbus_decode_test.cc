#include "edge/connectors/modbus_decode.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>

namespace ganglion::edge {
namespace {

double decode(std::initializer_list<uint16_t> regs, RegisterType t, bool byte_big = true,
              bool word_big = true) {
  std::array<uint16_t, 4> a{};
  std::copy(regs.begin(), regs.end(), a.begin());
  return decodeRegisters(std::span<const uint16_t>(a.data(), regs.size()), {t, byte_big, word_big});
}

TEST(ModbusDecode, IntegersInEveryOrder) {
  EXPECT_EQ(decode({0xFFFE}, RegisterType::kInt16), -2);
  EXPECT_EQ(decode({0xFFFE}, RegisterType::kUint16), 65534);
  EXPECT_EQ(decode({0xFEFF}, RegisterType::kInt16, false), -2);  // bytes swapped in the register
  // 0x12345678 as ABCD, CDAB (word little), BADC (byte little), DCBA (both little).
  EXPECT_EQ(decode({0x1234, 0x5678}, RegisterType::kUint32), 0x12345678);
  EXPECT_EQ(decode({0x5678, 0x1234}, RegisterType::kUint32, true, false), 0x12345678);
  EXPECT_EQ(decode({0x3412, 0x7856}, RegisterType::kUint32, false, true), 0x12345678);
  EXPECT_EQ(decode({0x7856, 0x3412}, RegisterType::kUint32, false, false), 0x12345678);
  EXPECT_EQ(decode({0xFFFF, 0xFFFE}, RegisterType::kInt32), -2);
  EXPECT_EQ(decode({0x0001}, RegisterType::kBool), 1);
  EXPECT_EQ(decode({0x0000}, RegisterType::kBool), 0);
}

TEST(ModbusDecode, FloatsInEveryOrder) {
  // 12.5f = 0x41480000; 3.14159 as float64 = 0x400921F9F01B866E.
  EXPECT_FLOAT_EQ(decode({0x4148, 0x0000}, RegisterType::kFloat32), 12.5);
  EXPECT_FLOAT_EQ(decode({0x0000, 0x4148}, RegisterType::kFloat32, true, false), 12.5);
  EXPECT_FLOAT_EQ(decode({0x4841, 0x0000}, RegisterType::kFloat32, false, true), 12.5);
  EXPECT_DOUBLE_EQ(decode({0x4009, 0x21F9, 0xF01B, 0x866E}, RegisterType::kFloat64), 3.14159);
  EXPECT_DOUBLE_EQ(decode({0x866E, 0xF01B, 0x21F9, 0x4009}, RegisterType::kFloat64, true, false), 3.14159);
  EXPECT_TRUE(std::isnan(decode({0x7FC0, 0x0000}, RegisterType::kFloat32)));
}

TEST(ModbusDecode, EncodeIsTheInverseAndRefusesWhatDoesNotFit) {
  for (RegisterType t : {RegisterType::kInt16, RegisterType::kUint16, RegisterType::kInt32,
                         RegisterType::kUint32, RegisterType::kFloat32, RegisterType::kFloat64}) {
    for (bool bb : {true, false}) {
      for (bool wb : {true, false}) {
        const RegisterLayout l{t, bb, wb};
        std::array<uint16_t, 4> regs{};
        ASSERT_TRUE(encodeRegisters(1234, l, regs));
        EXPECT_EQ(decodeRegisters(std::span<const uint16_t>(regs.data(), registerWidth(t)), l), 1234)
            << registerTypeName(t) << bb << wb;
      }
    }
  }
  std::array<uint16_t, 4> regs{};
  EXPECT_FALSE(encodeRegisters(70000, {RegisterType::kInt16}, regs));
  EXPECT_FALSE(encodeRegisters(-1, {RegisterType::kUint16}, regs));
  EXPECT_FALSE(encodeRegisters(1.5, {RegisterType::kInt32}, regs));
  EXPECT_FALSE(encodeRegisters(NAN, {RegisterType::kFloat32}, regs));
  EXPECT_FALSE(encodeRegisters(1e39, {RegisterType::kFloat32}, regs));
  EXPECT_FALSE(encodeRegisters(2, {RegisterType::kBool}, regs));
  EXPECT_EQ(registerWidth(RegisterType::kFloat64), 4);
  EXPECT_EQ(modbusTableFromName("input"), ModbusTable::kInput);
  EXPECT_FALSE(registerTypeFromName("int8"));
}

}  // namespace
}  // namespace ganglion::edge
