// Note [plugins]: a plugin is a shared library of subjects that links only
// capcheck::plugin (headers) or capcheck::torch_plugin (the LibTorch adapter
// and the graph facade), never capcheck's core libraries or RapidCheck: those
// symbols stay undefined in the plugin and resolve, when load_plugin()
// dlopen()s it, against the program that loads it, which exports them (the
// CLI is linked with ENABLE_EXPORTS). So a process holds one registry and one
// RapidCheck: the plugin's CAPCHECK_REGISTER_SUBJECT runs during dlopen and
// registers straight into this registry, and the plugin's generators run
// under the one RapidCheck that drives them. register_subject() stamps the
// entries registered during a load with the plugin's path, and checks the
// ABI number the plugin was compiled with (CAPCHECK_REGISTER_SUBJECT passes
// it). LibTorch and libcapcheck_torch_graph.so are shared libraries: the
// plugin's tensors and graphs are the process's. The plugin stays loaded.
#include "capcheck/subject_registry.h"

#include <dlfcn.h>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <deque>
#include <functional>
#include <map>
#include <cstdlib>
#include <mutex>
#include <set>

#include "capcheck/errors.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/registry.h"
#include "capcheck/trtllm_subject.h"

namespace capcheck {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

// A deque: find_subject() and registered_subjects() hand out references that
// must survive later registrations (a plugin loaded after a lookup).
using Entries = std::deque<SubjectEntry>;

Entries builtin_entries() {
  Entries entries;
  SubjectEntry trtllm = op_level_subject_entry(
      "trtllm",
      "TensorRT-LLM's CUDAGraphRunner with _preprocess_inputs/_postprocess_inputs, op-level "
      "(protocol and mutant are scenario fields: --protocol, --mutant)",
      [](const SubjectOptions&) { return SubjectFactory(make_trtllm_subject); });
  trtllm.builtin_scenarios = true;
  entries.push_back(std::move(trtllm));
  for (const std::string& name : builtin_subjects()) {
    if (!is_library_subject(name)) continue;
    SubjectEntry entry;
    entry.name = name;
    entry.description = name == "trtllm-torch"
                            ? "the same TensorRT-LLM runner written in LibTorch (float model, "
                              "[1,N] position ids); --protocol, --mutant"
                            : "the LibTorch TensorRT-LLM runner with multimodal rotary positions "
                              "([3,1,N] position ids); --protocol, --mutant";
    entry.devices = {"emulator", "cuda"};
    entry.builtin_scenarios = true;
    // The runner's kv_lens_cuda is never reallocated (docs/torch-subjects.md).
    entry.unimplemented_mutants = {Mutant::kReallocAfterCapture};
    entry.make = [name](const SubjectRequest& request) {
      return make_library_subjects(name, request.device);
    };
    entries.push_back(std::move(entry));
  }
  return entries;
}

void check_entry(const SubjectEntry& entry) {
  validate(SubjectRef{entry.name, {}});
  if (!entry.make) throw UsageError("subject " + entry.name + " has no maker (SubjectEntry::make)");
  if (entry.devices.empty()) throw UsageError("subject " + entry.name + " declares no device");
  for (const SubjectOption& option : entry.options) {
    SubjectRef probe{entry.name, {{option.name, option.default_value}}};
    validate(probe);
    if (!option.values.empty() &&
        std::find(option.values.begin(), option.values.end(), option.default_value) ==
            option.values.end()) {
      throw UsageError("subject " + entry.name + ": the default '" + option.default_value +
                       "' of option " + option.name + " is not one of its values (" +
                       join(option.values) + ")");
    }
  }
}

struct Registry {
  std::mutex mutex;
  Entries entries;
  bool builtins_added = false;
  std::set<std::string> loaded;  // plugin files, by real path
  // While load_plugin() runs the plugin's static initializers: its path, and
  // the first registration error (they cannot throw out of dlopen).
  std::string loading;
  std::string load_error;
  // Loaders of plugins that are not shared libraries, by file suffix.
  std::map<std::string, std::function<void(const std::string&)>> loaders;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: makers outlive static teardown
  return *r;
}

// The entries of this program, built-in ones first. Caller holds the mutex.
Entries& entries_locked() {
  Registry& r = registry();
  if (!r.builtins_added) {
    r.builtins_added = true;
    r.entries = builtin_entries();
  }
  return r.entries;
}

void add_locked(Entries& entries, SubjectEntry entry) {
  for (SubjectEntry& e : entries) {
    if (e.name == entry.name) {
      // The same script plugin registering again (imported a second time
      // under another module name): the newer definition replaces the older.
      if (!e.plugin.empty() && e.plugin == entry.plugin) {
        e = std::move(entry);
        return;
      }
      auto from = [](const SubjectEntry& x) {
        return x.plugin.empty() ? std::string("this program") : "plugin " + x.plugin;
      };
      throw UsageError("subject " + entry.name + " is registered twice: by " + from(e) +
                       " and by " + from(entry));
    }
  }
  entries.push_back(std::move(entry));
}

}  // namespace

bool implements_mutant(const SubjectEntry& entry, Mutant mutant) {
  const auto& missing = entry.unimplemented_mutants;
  return std::find(missing.begin(), missing.end(), mutant) == missing.end();
}

void require_mutant_implemented(const SubjectEntry& entry, Mutant mutant) {
  if (implements_mutant(entry, mutant)) return;
  throw UsageError("subject " + entry.name + " does not implement mutant " +
                   std::string(mutant_name(mutant)) + " (`capcheck list` shows its mutants)");
}

bool register_subject(SubjectEntry entry, int abi) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const bool from_plugin = !r.loading.empty();
  try {
    if (abi != detail::kPluginAbi) {
      throw UsageError("subject " + entry.name + " was compiled against capcheck plugin ABI " +
                       std::to_string(abi) + "; this capcheck has ABI " +
                       std::to_string(detail::kPluginAbi) + ": rebuild it");
    }
    check_entry(entry);
    if (from_plugin) entry.plugin = r.loading;
    // The built-ins are added first, even during static initialization
    // (they need nothing else initialized), so no name can shadow one.
    add_locked(entries_locked(), std::move(entry));
  } catch (const UsageError& e) {
    if (!from_plugin) throw;
    if (r.load_error.empty()) r.load_error = e.what();
    return false;
  }
  return true;
}

const SubjectEntry& find_subject(std::string_view name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> known;
  for (const SubjectEntry& e : entries_locked()) {
    if (e.name == name) return e;
    known.push_back(e.name);
  }
  throw UsageError("unknown subject " + quote_input(name) + "; registered: " + join(known) +
                   " (a subject of a plugin needs --plugin PATH or CAPCHECK_PLUGIN_PATH)");
}

std::vector<const SubjectEntry*> registered_subjects() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<const SubjectEntry*> out;
  for (const SubjectEntry& e : entries_locked()) out.push_back(&e);
  return out;
}

SubjectOptions parse_option_assignments(const std::vector<std::string>& assignments) {
  SubjectOptions options;
  for (const std::string& a : assignments) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError("--option " + quote_input(a) + " must be NAME=VALUE");
    }
    if (!options.emplace(a.substr(0, eq), a.substr(eq + 1)).second) {
      throw UsageError("--option " + a.substr(0, eq) + " is given twice");
    }
  }
  return options;
}

SubjectOptions resolve_options(const SubjectEntry& entry, const SubjectOptions& given) {
  SubjectOptions resolved;
  for (const auto& assignment : given) {
    const std::string& name = assignment.first;
    const std::string& value = assignment.second;
    const auto option = std::find_if(entry.options.begin(), entry.options.end(),
                                     [&](const SubjectOption& o) { return o.name == name; });
    if (option == entry.options.end()) {
      std::vector<std::string> names;
      for (const auto& o : entry.options) names.push_back(o.name);
      throw UsageError("subject " + entry.name + " takes no option " + quote_input(name) +
                       (names.empty() ? std::string("; it takes none")
                                      : "; it takes: " + join(names)));
    }
    if (!option->values.empty() &&
        std::find(option->values.begin(), option->values.end(), value) == option->values.end()) {
      throw UsageError("option " + name + " of subject " + entry.name + " must be one of " +
                       join(option->values) + " (got " + quote_input(value) + ")");
    }
    resolved[name] = value;
  }
  for (const SubjectOption& option : entry.options) resolved.emplace(option.name, option.default_value);
  validate(SubjectRef{entry.name, resolved});
  return resolved;
}

std::unique_ptr<Subjects> make_subjects(const SubjectEntry& entry, const SubjectRequest& request,
                                        Subjects** unguarded) {
  if (std::find(entry.devices.begin(), entry.devices.end(), request.device) == entry.devices.end()) {
    throw UsageError("subject " + entry.name + " runs on " + join(entry.devices) + ", not on " +
                     quote_input(request.device));
  }
  std::unique_ptr<Subjects> made = entry.make(request);
  if (!made) throw UsageError("subject " + entry.name + ": its maker returned no subjects");
  if (unguarded) *unguarded = made.get();
  return guard_subjects(std::move(made), entry.name);
}

rc::Gen<Scenario> subject_generator(const SubjectEntry& entry, const GenOptions& ranges,
                                    const SubjectOptions& options) {
  return entry.generator ? entry.generator(ranges, options) : gen_scenario(ranges);
}

ChosenSubject subject_from_environment(const char* subject_var, const char* options_var,
                                       const char* device_var) {
  auto env = [](const char* name, const char* fallback) {
    const char* value = name ? std::getenv(name) : nullptr;
    return std::string(value && *value ? value : fallback);
  };
  ChosenSubject chosen;
  try {
    load_plugins_from_env();
    chosen.entry = &find_subject(env(subject_var, "trtllm"));
    std::vector<std::string> given;
    const std::string list = env(options_var, "");
    for (std::size_t at = 0; !list.empty() && at <= list.size();) {
      const std::size_t comma = std::min(list.find(',', at), list.size());
      given.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    chosen.subject = SubjectRef{chosen.entry->name,
                                resolve_options(*chosen.entry, parse_option_assignments(given))};
    chosen.device = env(device_var, chosen.entry->devices.front().c_str());
    chosen.subjects = make_subjects(*chosen.entry, SubjectRequest{chosen.device, chosen.subject.options},
                                    &chosen.unguarded);
  } catch (const UsageError& e) {
    throw UsageError(std::string("the subject of ") + (subject_var ? subject_var : "") + ", " +
                     (options_var ? options_var : "") + " and " + (device_var ? device_var : "") +
                     ": " + e.what());
  }
  return chosen;
}

SubjectEntry op_level_subject_entry(std::string name, std::string description,
                                    std::function<SubjectFactory(const SubjectOptions&)> factory,
                                    std::vector<SubjectOption> options) {
  SubjectEntry entry;
  entry.name = std::move(name);
  entry.description = std::move(description);
  entry.devices = {"sim", "torch", "cuda"};
  entry.options = std::move(options);
  entry.make = [factory = std::move(factory)](const SubjectRequest& request) {
    return std::unique_ptr<Subjects>(
        std::make_unique<Harness>(make_backend(request.device), factory(request.options)));
  };
  return entry;
}

void load_plugin(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    throw UsageError("--plugin " + quote_input(path, 200) + ": no such file");
  }
  Registry& r = registry();
  std::size_t before = 0;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.loaded.count(resolved)) return;
    before = entries_locked().size();
    r.loading = resolved;
    r.load_error.clear();
  }
  const std::string file = resolved;
  std::function<void(const std::string&)> loader;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    for (const auto& [suffix, load] : r.loaders) {
      if (file.size() > suffix.size() &&
          file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0) {
        loader = load;
      }
    }
  }
  if (loader) {
    // A script plugin (a Python file): its loader registers with
    // register_subject, which names the file as the entries' plugin.
    try {
      loader(file);
    } catch (const UsageError& e) {
      std::lock_guard<std::mutex> lock(r.mutex);
      r.loading.clear();
      throw UsageError("--plugin " + path + ": " + e.what());
    } catch (...) {
      std::lock_guard<std::mutex> lock(r.mutex);
      r.loading.clear();
      throw;
    }
  } else if (file.size() > 3 && file.compare(file.size() - 3, 3, ".py") == 0) {
    std::lock_guard<std::mutex> lock(r.mutex);
    r.loading.clear();
    throw UsageError("--plugin " + path + " is a Python file: Python subjects run under "
                     "`python3 -m capcheck` (docs/python.md)");
  }
  void* handle = loader ? nullptr : ::dlopen(resolved, RTLD_NOW | RTLD_LOCAL);
  const char* why = handle || loader ? nullptr : ::dlerror();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.loading.clear();
  if (handle == nullptr && !loader) {
    std::string reason = why ? why : "unknown reason";
    if (reason.find("undefined symbol") != std::string::npos) {
      reason += " (a plugin resolves capcheck's symbols against the program that loads it: "
                "that program must export them, as the capcheck CLI does (ENABLE_EXPORTS), and "
                "the plugin must be built against this capcheck)";
    }
    throw UsageError("--plugin " + path + " cannot be loaded: " + reason);
  }
  r.loaded.insert(resolved);
  if (!r.load_error.empty()) {
    throw UsageError("--plugin " + path + ": " + r.load_error);
  }
  const bool registered_any =
      std::any_of(entries_locked().begin(), entries_locked().end(),
                  [&](const SubjectEntry& e) { return e.plugin == file; });
  if (entries_locked().size() == before && !registered_any) {
    throw UsageError("--plugin " + path + " registers no capcheck subject (no " +
                     (loader ? "register_subject" : "CAPCHECK_REGISTER_SUBJECT") +
                     " ran when it was loaded)");
  }
}

void set_plugin_loader(std::string suffix, std::function<void(const std::string& path)> loader) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.loaders[std::move(suffix)] = std::move(loader);
}

std::string plugin_being_loaded() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.loading;
}

std::vector<std::string> load_plugins_from_env() {
  std::vector<std::string> files;
  const char* env = std::getenv("CAPCHECK_PLUGIN_PATH");
  if (env == nullptr || *env == '\0') return files;
  std::string list = env;
  bool script_plugins = false;  // *.py files in a directory: only where a loader runs them
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    script_plugins = r.loaders.count(".py") > 0;
  }
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto end = std::min(list.find(':', start), list.size());
    const std::string item = list.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    struct stat info {};
    if (::stat(item.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      std::vector<std::string> in_dir;
      if (DIR* dir = ::opendir(item.c_str())) {
        while (const dirent* d = ::readdir(dir)) {
          const std::string name = d->d_name;
          auto ends = [&](const char* suffix, std::size_t n) {
            return name.size() > n && name.compare(name.size() - n, n, suffix) == 0;
          };
          if (name[0] != '.' && (ends(".so", 3) || (ends(".py", 3) && script_plugins))) {
            in_dir.push_back(item + "/" + name);
          }
        }
        ::closedir(dir);
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(item);
    }
  }
  for (const std::string& file : files) {
    try {
      load_plugin(file);
    } catch (const UsageError& e) {
      throw UsageError(std::string("CAPCHECK_PLUGIN_PATH: ") + e.what());
    }
  }
  return files;
}

}  // namespace capcheck

