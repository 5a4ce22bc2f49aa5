// Errors raised by the core. The bindings map ValueError and TypeError to the
// Python exceptions of the same name, so messages must name the argument and
// say what was expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace detcore {

// std::invalid_argument already maps to Python's ValueError in pybind11.
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class TypeError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// A failure of the runtime (a CUDA launch, say), not of the caller's input.
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

template <typename... Args>
[[noreturn]] void throw_value_error(const Args&... args) {
  throw ValueError(detail::concat(args...));
}

template <typename... Args>
[[noreturn]] void throw_type_error(const Args&... args) {
  throw TypeError(detail::concat(args...));
}

}  // namespace detcore
