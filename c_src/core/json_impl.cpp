// Boost.JSON compiled into this library (its documented header-only mode), so the plugin carries no
// runtime dependency on libboost_json.
#include <boost/json/src.hpp>
