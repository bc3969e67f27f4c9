// Class names as runtime/escnet_runtime/vocabulary.py check_class_names checks them.
#pragma once

#include <string>
#include <vector>

namespace escnet::detail {

// A non-empty list (at most kMaxClasses) of distinct (case- and space-insensitive), non-blank
// names; FieldError "<field>: ..." otherwise.
void check_class_names(const std::vector<std::string>& names, const std::string& field);

}  // namespace escnet::detail
