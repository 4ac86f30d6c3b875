// A byte buffer with a read and a write cursor over one fixed block taken from a per-worker
// BufferPool, so idle connections hold no block and busy ones reuse blocks without malloc.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace ganglion {

/// Free list of equally sized blocks. One per worker thread; not thread-safe.
class BufferPool {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;
  explicit BufferPool(size_t max_free = 1024) : max_free_(max_free) {}
  std::unique_ptr<char[]> take() {
    if (free_.empty()) return std::unique_ptr<char[]>(new char[kBlockSize]);
    auto block = std::move(free_.back());
    free_.pop_back();
    return block;
  }
  void give(std::unique_ptr<char[]> block) {
    if (block && free_.size() < max_free_) free_.push_back(std::move(block));
  }

 private:
  std::vector<std::unique_ptr<char[]>> free_;
  size_t max_free_;
};

class Buffer {
 public:
  explicit Buffer(BufferPool& pool) : pool_(&pool) {}
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  bool empty() const { return begin_ == end_; }
  size_t size() const { return end_ - begin_; }
  std::string_view readable() const { return {block_.get() + begin_, end_ - begin_}; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Space to read into, taking a block if needed and moving unread bytes to the front.
  char* writePtr() {
    ensureBlock();
    if (end_ == BufferPool::kBlockSize && begin_ > 0) compact();
    return block_.get() + end_;
  }
  size_t writable() const { return block_ ? BufferPool::kBlockSize - end_ : BufferPool::kBlockSize; }
  bool full() const { return block_ && begin_ == 0 && end_ == BufferPool::kBlockSize; }
  void commit(size_t n) { end_ += n; }
  /// Returns the block to the pool when nothing is buffered (idle connections hold none).
  void releaseIfEmpty() {
    if (empty()) release();
  }
  void release() {
    if (block_) pool_->give(std::move(block_));
    begin_ = end_ = 0;
  }
  void compact() {
    if (begin_ == 0) return;
    std::memmove(block_.get(), block_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }

 private:
  void ensureBlock() {
    if (!block_) block_ = pool_->take();
  }
  BufferPool* pool_;
  std::unique_ptr<char[]> block_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace ganglion
