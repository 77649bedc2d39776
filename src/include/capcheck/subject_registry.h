// The subject registry (docs/your-engine.md): every subject a run can name,
// built in or registered by a user's code, with its devices, its options,
// the scenario fields it reads and, optionally, its own scenario generator.
// A user's shared library registers subjects with CAPCHECK_REGISTER_SUBJECT;
// `capcheck --plugin PATH` (or CAPCHECK_PLUGIN_PATH) loads it
// (Note [plugins] in runner/subject_registry.cc).
#pragma once

#include <rapidcheck.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/generators.h"
#include "capcheck/instance.h"
#include "capcheck/subject.h"
#include "capcheck/token.h"

namespace capcheck {

/// An option a subject takes (`--option NAME=VALUE`), recorded in its tokens.
struct SubjectOption {
  std::string name;
  std::string help;
  /// The values allowed; empty: any value a token can hold.
  std::vector<std::string> values;
  std::string default_value;
};

/// What a subject is built for: a device it declared and every option it
/// declared (defaults filled in).
struct SubjectRequest {
  std::string device;
  SubjectOptions options;
};

using SubjectsMaker = std::function<std::unique_ptr<Subjects>(const SubjectRequest& request)>;
/// A subject's scenarios: from capcheck's ranges (--batch-size-max, ...) and
/// the subject's options. A transformation of gen_scenario(options) is one
/// (gen::map), a generator of its own another; shrinking follows its shrinks.
using ScenarioGenerator =
    std::function<rc::Gen<Scenario>(const GenOptions& ranges, const SubjectOptions& options)>;

struct SubjectEntry {
  /// 1..64 of [a-z0-9._-]: what --subject and tokens name.
  std::string name;
  /// One line for `capcheck list`.
  std::string description;
  /// Devices it runs on; the first is the default. Op-level subjects run on
  /// backends ("sim", "torch", "cuda"), LibTorch ones on "emulator" or "cuda".
  std::vector<std::string> devices;
  std::vector<SubjectOption> options;
  /// The scenario fields it reads; reports print only those.
  ScenarioFields fields = kAllScenarioFields;
  /// Mutants of the built-in scenarios (scenario.h) it does not implement:
  /// `--mutant`, a token and `capcheck mutants` refuse or leave them out,
  /// rather than running a mutant that changes nothing.
  std::vector<Mutant> unimplemented_mutants;
  SubjectsMaker make;
  /// Its scenarios; empty: gen_scenario(ranges).
  ScenarioGenerator generator;
  /// Reads the built-in TensorRT-LLM scenarios: `cc1:` tokens (which name no
  /// subject) and their regression files replay under it.
  bool builtin_scenarios = false;
  /// The plugin file that registered it ("" when built in or linked in).
  std::string plugin;
};

namespace detail {
/// Bumped when SubjectEntry or what a plugin resolves against changes.
inline constexpr int kPluginAbi = 2;
}  // namespace detail

/// Registers `entry` in this program's registry; returns true (for
/// CAPCHECK_REGISTER_SUBJECT). UsageError for a bad or taken name, no maker,
/// no device, an option default outside its values, or an `abi` (the one the
/// caller was compiled with) other than this capcheck's. During load_plugin()
/// errors are kept for it to report, and false is returned.
bool register_subject(SubjectEntry entry, int abi = detail::kPluginAbi);
/// Registers an entry at static initialization. `ident` names the static
/// (any identifier unique in the file), `...` is a SubjectEntry expression
/// (op_level_subject_entry, torch_subject_entry in torch_subject.h, or one's own).
#define CAPCHECK_REGISTER_SUBJECT(ident, ...) \
  static const bool capcheck_subject_registered_##ident = ::capcheck::register_subject(__VA_ARGS__)

/// The entry named `name` (valid for the process's life, later registrations
/// included); UsageError listing the registered names (and
/// mentioning --plugin) for an unknown one.
const SubjectEntry& find_subject(std::string_view name);
/// Every entry, built-in ones first, then in registration order.
std::vector<const SubjectEntry*> registered_subjects();

/// Whether `entry` implements `mutant` (it is not among unimplemented_mutants).
bool implements_mutant(const SubjectEntry& entry, Mutant mutant);
/// UsageError when it does not.
void require_mutant_implemented(const SubjectEntry& entry, Mutant mutant);

/// Parses "NAME=VALUE" assignments (--option); UsageError for a malformed or
/// repeated one.
SubjectOptions parse_option_assignments(const std::vector<std::string>& assignments);
/// `given` checked against the entry's options (UsageError naming an unknown
/// option or a value not allowed, with what is) and completed with defaults.
SubjectOptions resolve_options(const SubjectEntry& entry, const SubjectOptions& given);
/// The subjects of `entry` on `request.device` (UsageError for a device it
/// does not declare), guarded so that whatever they throw is a verdict
/// naming the subject (guard_subjects). `unguarded`, when given, receives
/// the subjects as the maker built them (to add backend peers).
std::unique_ptr<Subjects> make_subjects(const SubjectEntry& entry, const SubjectRequest& request,
                                        Subjects** unguarded = nullptr);
/// The entry's scenarios under `ranges` and `options`.
rc::Gen<Scenario> subject_generator(const SubjectEntry& entry, const GenOptions& ranges,
                                    const SubjectOptions& options);

/// Loads a plugin: a shared library that registers subjects with
/// CAPCHECK_REGISTER_SUBJECT and links capcheck::plugin or
/// capcheck::torch_plugin, whose capcheck symbols resolve against this
/// program (Note [plugins]: the program must export them, ENABLE_EXPORTS).
/// Its subjects join this program's registry. Loading the same file twice is
/// a no-op. UsageError naming the file when it cannot be loaded, registers
/// no subject, was built against another capcheck, or takes a name already
/// taken.
void load_plugin(const std::string& path);
/// Loads plugins that are not shared libraries: load_plugin() of a file whose
/// name ends in `suffix` calls `loader` with its real path instead of
/// dlopen(); the loader registers subjects with register_subject (their
/// `plugin` is that path). The `capcheck` Python module sets one for ".py"
/// (docs/python.md); without it a ".py" plugin is a UsageError saying so.
void set_plugin_loader(std::string suffix, std::function<void(const std::string& path)> loader);
/// The real path of the plugin load_plugin() is loading now ("" when none).
std::string plugin_being_loaded();
/// Loads every plugin in CAPCHECK_PLUGIN_PATH (':'-separated files, or
/// directories whose *.so files, and *.py files where a loader is set, are
/// loaded in name order); returns the files.
std::vector<std::string> load_plugins_from_env();

/// A subject chosen by the environment, for programs without a command line
/// (the property suites, the fuzzers).
struct ChosenSubject {
  const SubjectEntry* entry = nullptr;
  /// The name and every option (defaults filled in).
  SubjectRef subject;
  std::string device;
  /// Its subjects, guarded (make_subjects); `unguarded` as the maker built them.
  std::unique_ptr<Subjects> subjects;
  Subjects* unguarded = nullptr;
};
/// Loads CAPCHECK_PLUGIN_PATH, then the subject named by the variable
/// `subject_var` (default trtllm) with the options of `options_var`
/// ("name=value,name=value") on the device of `device_var` (default: the
/// subject's first). UsageError naming the variable for a bad value.
ChosenSubject subject_from_environment(const char* subject_var = "CAPCHECK_SUBJECT",
                                       const char* options_var = "CAPCHECK_SUBJECT_OPTIONS",
                                       const char* device_var = "CAPCHECK_BACKEND");

/// An entry for an op-level subject (subject.h) on the backends "sim",
/// "torch" and "cuda": `factory` builds the SubjectFactory for the options.
SubjectEntry op_level_subject_entry(
    std::string name, std::string description,
    std::function<SubjectFactory(const SubjectOptions& options)> factory,
    std::vector<SubjectOption> options = {});

}  // namespace capcheck

