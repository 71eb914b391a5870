// TrialLog and read_trial_log over the HDF5 C API (io/h5_handle.h). Rows are buffered per table
// and written only by flush(), so the file changes only inside calls that end with H5Fflush (the
// durability argument of trial_log.h). Each metric is a chunked, unlimited 1-D float64 dataset
// whose fill value is NaN: extending a dataset that a row did not mention pads it with NaN, and
// a metric created after earlier rows reads NaN there, with no explicit writes.
#include "io/trial_log.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/logging.h"
#include "io/h5_handle.h"

namespace md::io {

namespace {

constexpr hsize_t kChunkRows = 1024;  // 8 KiB chunks: one chunk covers a typical run's epochs
constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
const char* const kFinalGroup = "final";

struct TableState {
  h5::Group group;  // invalid until the table exists in the file
  std::int64_t written_rows = 0;
  std::map<std::string, h5::Dataset> datasets;         // metrics that exist in the file
  std::map<std::string, std::vector<double>> pending;  // buffered values, per metric
  std::int64_t pending_rows = 0;
};

h5::Dataset create_metric(const TableState& table, const std::string& metric,
                          const h5::FileContext& file, const std::string& path) {
  hsize_t extent[1] = {static_cast<hsize_t>(table.written_rows)};
  hsize_t max_extent[1] = {H5S_UNLIMITED};
  h5::Dataspace space(MD_H5(H5Screate_simple(1, extent, max_extent), file, path));
  h5::PropertyList creation(MD_H5(H5Pcreate(H5P_DATASET_CREATE), file, path));
  hsize_t chunk[1] = {kChunkRows};
  MD_H5(H5Pset_chunk(creation.id(), 1, chunk), file, path);
  MD_H5(H5Pset_fill_value(creation.id(), H5T_NATIVE_DOUBLE, &kMissing), file, path);
  return h5::Dataset(MD_H5(H5Dcreate2(table.group.id(), metric.c_str(), H5T_IEEE_F64LE, space.id(),
                                      H5P_DEFAULT, creation.id(), H5P_DEFAULT),
                           file, path));
}

void set_rows(const h5::Dataset& dataset, std::int64_t rows, const h5::FileContext& file,
              const std::string& path) {
  hsize_t extent[1] = {static_cast<hsize_t>(rows)};
  MD_H5(H5Dset_extent(dataset.id(), extent), file, path);
}

void write_rows(const h5::Dataset& dataset, std::int64_t first_row,
                const std::vector<double>& values, const h5::FileContext& file,
                const std::string& path) {
  if (values.empty()) return;
  h5::Dataspace file_space(MD_H5(H5Dget_space(dataset.id()), file, path));
  hsize_t start[1] = {static_cast<hsize_t>(first_row)};
  hsize_t count[1] = {values.size()};
  MD_H5(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start, nullptr, count, nullptr), file,
        path);
  h5::Dataspace memory_space(MD_H5(H5Screate_simple(1, count, nullptr), file, path));
  MD_H5(H5Dwrite(dataset.id(), H5T_NATIVE_DOUBLE, memory_space.id(), file_space.id(), H5P_DEFAULT,
                 values.data()),
        file, path);
}

std::vector<double> read_column(const h5::Dataset& dataset, std::int64_t rows,
                                const h5::FileContext& file, const std::string& path) {
  std::vector<double> values(static_cast<std::size_t>(rows));
  if (rows == 0) return values;
  MD_H5(H5Dread(dataset.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
        file, path);
  return values;
}

// Checks that a table's child is a 1-D numeric dataset; returns its length.
std::int64_t metric_length(const h5::Dataset& dataset, const h5::FileContext& file,
                           const std::string& path) {
  h5::Datatype type(MD_H5(H5Dget_type(dataset.id()), file, path));
  H5T_class_t type_class = H5Tget_class(type.id());
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER) {
    h5::throw_file_error(file, path, "a metric must be a numeric dataset");
  }
  std::vector<hsize_t> extent = h5::dataset_extent(dataset, file, path);
  if (extent.size() != 1) h5::throw_file_error(file, path, "a metric must be a 1-D dataset");
  return static_cast<std::int64_t>(extent[0]);
}

void check_schema(const AttributeMap& attributes, const h5::FileContext& file) {
  auto found = attributes.find(kSchemaVersionAttribute);
  if (found == attributes.end()) {
    h5::throw_file_error(file, "/",
                         "not a metadistill trial log (no root attribute schema_version)");
  }
  const auto* version = std::get_if<std::int64_t>(&found->second);
  if (version == nullptr) {
    h5::throw_file_error(file, "/",
                         detail::concat("trial log schema_version ", attr_to_string(found->second),
                                        " is not an integer"));
  }
  check_schema_version(FileKind::TrialLog, file.path, *version);
}

std::int64_t complete_rows(const std::map<std::string, std::int64_t>& lengths,
                           const std::string& file_path, const std::string& table) {
  if (lengths.empty()) return 0;
  auto [shortest, longest] =
      std::minmax_element(lengths.begin(), lengths.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; });
  if (shortest->second != longest->second) {
    log_warning(file_path, ": table /", table, " has metrics of unequal lengths (", shortest->first,
                ": ", shortest->second, ", ", longest->first, ": ", longest->second,
                "); keeping the ", shortest->second, " complete rows");
  }
  return shortest->second;
}

}  // namespace

struct TrialLog::Impl {
  h5::FileContext file;
  h5::File handle;
  std::map<std::string, TableState> tables;  // declared after handle: closed before it

  std::string table_path(const std::string& table) const { return "/" + table; }

  void check_open() const { MD_CHECK(handle.valid(), file.path, ": trial log is closed"); }

  void load_tables(const h5::FileContext& input) {
    for (const h5::Child& child : h5::list_children(handle.id(), input, "/")) {
      if (child.name == kFinalGroup) continue;
      std::string group_path = table_path(child.name);
      if (child.kind != h5::ChildKind::GroupLink) {
        h5::throw_file_error(input, group_path, "expected a table group at the root");
      }
      TableState& table = tables[child.name];
      table.group = h5::open_group(handle.id(), child.name, input, group_path);
      std::map<std::string, std::int64_t> lengths;
      for (const h5::Child& metric : h5::list_children(table.group.id(), input, group_path)) {
        std::string path = h5::child_path(group_path, metric.name);
        if (metric.kind != h5::ChildKind::DatasetLink) {
          h5::throw_file_error(input, path, "a table holds only metric datasets");
        }
        h5::Dataset dataset(
            MD_H5(H5Dopen2(table.group.id(), metric.name.c_str(), H5P_DEFAULT), input, path));
        lengths[metric.name] = metric_length(dataset, input, path);
        table.datasets.emplace(metric.name, std::move(dataset));
      }
      table.written_rows = complete_rows(lengths, file.path, child.name);
      for (auto& [metric, dataset] : table.datasets) {
        if (lengths[metric] != table.written_rows) {
          set_rows(dataset, table.written_rows, file, h5::child_path(group_path, metric));
        }
      }
    }
  }

  void flush_table(const std::string& name, TableState& table) {
    std::string group_path = table_path(name);
    if (!table.group.valid()) {
      table.group = h5::create_group(handle.id(), name, h5::LinkOrder::Tracked, file, group_path);
    }
    if (table.pending_rows == 0) return;
    std::int64_t total_rows = table.written_rows + table.pending_rows;
    for (auto& [metric, values] : table.pending) {
      std::string path = h5::child_path(group_path, metric);
      values.resize(static_cast<std::size_t>(table.pending_rows), kMissing);
      auto found = table.datasets.find(metric);
      if (found == table.datasets.end()) {
        found = table.datasets.emplace(metric, create_metric(table, metric, file, path)).first;
      }
      set_rows(found->second, total_rows, file, path);
      write_rows(found->second, table.written_rows, values, file, path);
    }
    for (auto& [metric, dataset] : table.datasets) {
      if (table.pending.count(metric) == 0) {
        set_rows(dataset, total_rows, file, h5::child_path(group_path, metric));
      }
    }
    table.written_rows = total_rows;
    table.pending.clear();
    table.pending_rows = 0;
  }

  void flush() {
    check_open();
    for (auto& [name, table] : tables) flush_table(name, table);
    h5::flush_file(handle, file);
  }

  void close() {
    if (!handle.valid()) return;
    flush();
    tables.clear();
    handle.close(file, "");
  }
};

TrialLog::TrialLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrialLog::TrialLog(TrialLog&&) noexcept = default;
TrialLog& TrialLog::operator=(TrialLog&& other) noexcept {
  if (this != &other) {
    TrialLog closing(std::move(*this));
    impl_ = std::move(other.impl_);
  }
  return *this;
}

TrialLog::~TrialLog() {
  if (!impl_) return;
  h5::ApiGuard guard;  // held until the handles in impl_ are closed
  if (impl_->handle.valid()) {
    try {
      impl_->close();
    } catch (const std::exception& error) {
      log_error("closing trial log ", impl_->file.path, " failed: ", error.what());
    }
  }
  impl_.reset();
}

TrialLog TrialLog::open(const std::string& path, OpenMode mode,
                        const AttributeMap& root_attributes) {
  h5::ApiGuard guard;
  auto impl = std::make_unique<Impl>();
  impl->file = h5::FileContext{path, h5::Blame::Library};
  if (mode == OpenMode::Create) {
    impl->handle = h5::create_file(impl->file);
  } else {
    h5::FileContext input{path, h5::Blame::Input};
    impl->handle = h5::open_file(input, h5::FileMode::ReadWrite);
    check_schema(h5::read_attributes(impl->handle.id(), input, "/"), input);
    impl->load_tables(input);
  }
  h5::write_attribute(impl->handle.id(), kSchemaVersionAttribute, kTrialLogSchemaVersion,
                      impl->file, "/");
  for (const auto& [name, value] : root_attributes) {
    h5::write_attribute(impl->handle.id(), name, value, impl->file, "/");
  }
  impl->flush();
  return TrialLog(std::move(impl));
}

const std::string& TrialLog::path() const {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  return impl_->file.path;
}

void TrialLog::set_attribute(const std::string& name, const AttrValue& value) {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  h5::ApiGuard guard;
  impl_->check_open();
  h5::write_attribute(impl_->handle.id(), name, value, impl_->file, "/");
  impl_->flush();
}

void TrialLog::append(const std::string& table, const Row& row) {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  impl_->check_open();
  h5::check_link_name(table, "table");
  MD_CHECK(table != kFinalGroup, "'", kFinalGroup, "' is not a table: use set_final()");
  for (const auto& [metric, value] : row) h5::check_link_name(metric, "metric");
  TableState& state = impl_->tables[table];
  for (const auto& [metric, value] : row) {
    std::vector<double>& column = state.pending[metric];
    column.resize(static_cast<std::size_t>(state.pending_rows), kMissing);
    column.push_back(value);
  }
  ++state.pending_rows;
}

std::int64_t TrialLog::rows(const std::string& table) const {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  auto found = impl_->tables.find(table);
  if (found == impl_->tables.end()) return 0;
  return found->second.written_rows + found->second.pending_rows;
}

void TrialLog::truncate_rows(const std::string& table, std::int64_t row_count) {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  std::int64_t available = rows(table);
  MD_CHECK(row_count >= 0 && row_count <= available, impl_->file.path, ": cannot truncate table /",
           table, " to ", row_count, " rows: it has ", available);
  h5::ApiGuard guard;
  impl_->flush();
  auto found = impl_->tables.find(table);
  if (found == impl_->tables.end()) return;
  TableState& state = found->second;
  for (auto& [metric, dataset] : state.datasets) {
    set_rows(dataset, row_count, impl_->file, h5::child_path(impl_->table_path(table), metric));
  }
  state.written_rows = row_count;
  h5::flush_file(impl_->handle, impl_->file);
}

void TrialLog::set_final(const std::map<std::string, double>& attributes) {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  h5::ApiGuard guard;
  impl_->check_open();
  const h5::FileContext& file = impl_->file;
  h5::Group group = h5::link_exists(impl_->handle.id(), kFinalGroup, file, "/final")
                        ? h5::open_group(impl_->handle.id(), kFinalGroup, file, "/final")
                        : h5::create_group(impl_->handle.id(), kFinalGroup, h5::LinkOrder::ByName,
                                           file, "/final");
  for (const auto& [name, value] : attributes) {
    h5::write_attribute(group.id(), name, value, file, "/final");
  }
  impl_->flush();
}

void TrialLog::flush() {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  h5::ApiGuard guard;
  impl_->flush();
}

void TrialLog::close() {
  MD_CHECK(impl_ != nullptr, "use of a moved-from TrialLog");
  h5::ApiGuard guard;
  impl_->close();
}

TrialLogContents read_trial_log(const std::string& path) {
  h5::ApiGuard guard;
  h5::FileContext file{path, h5::Blame::Input};
  h5::File handle = h5::open_file(file, h5::FileMode::ReadOnly);
  TrialLogContents contents;
  contents.attributes = h5::read_attributes(handle.id(), file, "/");
  check_schema(contents.attributes, file);
  for (const h5::Child& child : h5::list_children(handle.id(), file, "/")) {
    std::string group_path = "/" + child.name;
    if (child.kind != h5::ChildKind::GroupLink) {
      h5::throw_file_error(file, group_path, "expected a table group or /final at the root");
    }
    h5::Group group = h5::open_group(handle.id(), child.name, file, group_path);
    if (child.name == kFinalGroup) {
      for (const auto& [name, value] : h5::read_attributes(group.id(), file, group_path)) {
        contents.final_values[name] = attribute_double({{name, value}}, name, path + ":/final");
      }
      continue;
    }
    auto& table = contents.tables[child.name];
    std::map<std::string, std::int64_t> lengths;
    for (const h5::Child& metric : h5::list_children(group.id(), file, group_path)) {
      std::string metric_path = h5::child_path(group_path, metric.name);
      if (metric.kind != h5::ChildKind::DatasetLink) {
        h5::throw_file_error(file, metric_path, "a table holds only metric datasets");
      }
      h5::Dataset dataset(
          MD_H5(H5Dopen2(group.id(), metric.name.c_str(), H5P_DEFAULT), file, metric_path));
      std::int64_t length = metric_length(dataset, file, metric_path);
      lengths[metric.name] = length;
      table[metric.name] = read_column(dataset, length, file, metric_path);
    }
    std::int64_t rows = complete_rows(lengths, path, child.name);
    for (auto& [metric, values] : table) values.resize(static_cast<std::size_t>(rows));
  }
  return contents;
}

}  // namespace md::io
