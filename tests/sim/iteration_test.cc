// Iteration::describe(): one line with composition, action, key and offsets.
#include "capcheck/sim/iteration.h"

#include <gtest/gtest.h>

namespace capcheck::sim {
namespace {

TEST(Iteration, DescribeNamesCompositionActionKeyAndOffsets) {
  Iteration it;
  it.index = 7;
  it.num_generations = 2;
  it.num_dummy_requests = 1;
  it.runs_as_graph = true;
  it.action = GraphAction::kCapture;
  it.key = GraphKey{2, 1};
  it.request_ids = {3, kDummyRequestId};
  it.scenario.key = it.key;
  it.scenario.num_generations = 2;
  it.scenario.seq_lens = {2, 2};
  it.scenario.kv_lens = {9, 3};
  it.scenario.previous_pos_id_offsets = {2, 2, 0, 0};
  it.scenario.previous_kv_lens_offsets = {0, 0};
  it.accepted = {1, 0};
  const std::string line = it.describe();
  EXPECT_NE(line.find("iteration 7"), std::string::npos) << line;
  EXPECT_NE(line.find("1 generation + 1 dummy"), std::string::npos) << line;
  EXPECT_NE(line.find("capture key=(2,1)"), std::string::npos) << line;
  EXPECT_NE(line.find("rows=[r3,dummy]"), std::string::npos) << line;
  EXPECT_NE(line.find("pos_offsets=[2,2,0,0]"), std::string::npos) << line;
  EXPECT_NE(line.find("accepted=[1,0]"), std::string::npos) << line;
  EXPECT_EQ(graph_action_name(GraphAction::kReplay), "replay");
}

}  // namespace
}  // namespace capcheck::sim
