"""GPU actor pools packed the way Ray places them: every actor the plan starts can be placed,
and pools whose shares change are replaced on a real Ray with a logical GPU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray

from bolly_ray.engine.registry import build_registry
from bolly_ray.executors.actor_pools import ActorPools, Pool
from bolly_ray.executors.gpu_packing import Demand, GpuBudget, firsts_fit, pool_sizes, share_gpus
from bolly_ray.spec import Resources, StageSettings
from tests import fakes


def need(gpus: float, jobs: int = 3) -> Demand:
    return Demand(jobs, Resources(cpus=1, gpus=gpus), StageSettings(), True)


def shares(demand: dict[tuple[str, str | None], Demand]) -> dict[str, float]:
    return {key[0]: d.resources.gpus for key, d in demand.items()}


def test_three_jobs_on_one_gpu_get_one_actor_per_pool() -> None:
    """The compose cluster's case: ASR's whole GPU and alignment's half on one card, three
    films. Sized on its own share, alignment took the card with three actors and ASR's
    actor waited forever."""
    demand = share_gpus({("asr", "m"): need(1.0), ("align", "m"): need(0.5)}, [1.0])
    assert shares(demand) == {"asr": 0.6666, "align": 0.3333}
    assert pool_sizes(demand, [1.0], cpus=2) == {("asr", "m"): 1, ("align", "m"): 1}


def test_spare_gpus_go_to_more_actors_one_pool_at_a_time() -> None:
    demand = share_gpus({("asr", "m"): need(1.0), ("align", "m"): need(0.5)}, [1.0, 1.0])
    assert shares(demand) == {"asr": 1.0, "align": 0.5}  # both fit as declared
    # asr takes one card whole; align's half fits twice on the other, a third nowhere
    assert pool_sizes(demand, [1.0, 1.0], cpus=4) == {("asr", "m"): 1, ("align", "m"): 2}
    assert pool_sizes(demand, [4.0], cpus=4) == {("asr", "m"): 3, ("align", "m"): 2}


def test_no_pool_gets_more_actors_than_it_has_jobs() -> None:
    demand = {("asr", "m"): need(0.25, jobs=2)}
    assert pool_sizes(demand, [1.0], cpus=2) == {("asr", "m"): 2}


def test_shares_shrink_until_the_first_actors_pack_onto_separate_cards() -> None:
    """Two one-GPU nodes and 2.5 GPUs asked: scaled to the total (0.8 + 0.8 + 0.4) the
    two big ones take a card each and the small one fits on neither."""
    declared = {("asr", "m"): need(1.0), ("translate", "m"): need(1.0),
                ("align", "m"): need(0.5)}
    demand = share_gpus(dict(declared), [1.0, 1.0])
    assert firsts_fit(demand, [1.0, 1.0]) and not firsts_fit(declared, [1.0, 1.0])
    assert all(0 < d.resources.gpus < declared[k].resources.gpus for k, d in demand.items())
    assert shares(demand)["asr"] == shares(demand)["translate"]


def test_gpu_kind_pools_set_to_the_cpu_get_an_actor_per_cpu_up_to_their_jobs() -> None:
    demand = {("asr", "m"): need(0.0, jobs=5)}
    assert pool_sizes(demand, [], cpus=2) == {("asr", "m"): 2}


def test_a_budget_places_whole_gpus_on_one_node_and_parts_on_one_card() -> None:
    budget = GpuBudget([1.0, 2.0])
    assert budget.take(2.0)  # the second node, both cards
    assert not budget.take(2.0)
    assert budget.take(0.7) and not budget.take(0.7) and budget.take(0.3)


@ray.remote(num_cpus=0)
class Holder:
    def ping(self) -> bool:
        return True


@pytest.fixture(scope="module")
def one_gpu() -> Iterator[None]:
    ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def holder(gpus: float) -> Any:
    def new() -> Any:
        return Holder.options(num_gpus=gpus).remote()  # type: ignore[attr-defined]
    return new


def placed(pool: Pool) -> bool:
    refs = [actor.ping.remote() for actor in pool.actors.values()]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=30)
    return len(ready) == len(refs)


@pytest.mark.slow
def test_a_pool_added_later_gets_its_share_of_a_gpu_a_warm_pool_holds(one_gpu: None) -> None:
    """A service's intake: ASR warm on the whole GPU, then a job that needs alignment. ASR's
    idle actor is replaced at its smaller share; one busy with an attempt keeps its GPU
    until the attempt returns, and the new actors are placed once it does."""
    asr = Pool(1.0)
    asr.resize(1, 1.0, holder(1.0))
    assert placed(asr)
    [old] = asr.actors
    asr.busy[old] += 1  # an attempt is running on it
    asr.resize(1, 0.6666, holder(0.6666))
    align = Pool(0.3333)
    align.resize(1, 0.3333, holder(0.3333))
    assert old in asr.retiring and old not in asr.actors  # no new work, not yet killed
    assert ray.get(asr.retiring[old].ping.remote(), timeout=30)
    asr.busy[old] -= 1
    asr.release_retired(old)  # its attempt returned
    assert not asr.retiring
    assert placed(asr) and placed(align)
    assert asr.pick() in asr.actors


@pytest.mark.slow
def test_an_actor_that_died_is_replaced_by_a_fresh_one(one_gpu: None) -> None:
    """Ray gives up restarting an actor whose restarts are spent (a node whose workers were
    killed before it was seen dead spends them at once); retried attempts must not go to
    it again."""
    registry = build_registry([fakes.fake("asr", ["media"], ["text"], gpu=True)])
    pools = ActorPools(registry)
    key = ("asr", None)
    pools.declared = pools.demand = {key: need(1.0, jobs=1)}
    pools.sizes = {key: 1}
    try:
        dead, dead_id = pools.acquire(key)
        ray.kill(dead, no_restart=True)
        pools.release(key, dead_id)
        pools.replace_lost(key, dead_id)
        pools.replace_lost(key, dead_id)  # a second attempt's news of the same death
        fresh, fresh_id = pools.acquire(key)
        assert fresh_id != dead_id and list(pools.pools[key].actors) == [fresh_id]
        assert ray.get(fresh.__ray_ready__.remote(), timeout=30)  # placed on the freed GPU
        pools.release(key, dead_id)  # late news about the dead one changes nothing
        assert pools.pools[key].busy[fresh_id] == 1 and dead_id not in pools.pools[key].busy
    finally:
        pools.stop()
