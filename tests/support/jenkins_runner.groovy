// Run a Declarative Jenkinsfile the way Jenkins would, without Jenkins, for tests/support/jenkins_harness.py.
//
// It follows pipeline-model-definition's evaluation order (RuntimeASTTransformer, ModelInterpreter): the
// model is built when the build starts, and stage `options` arguments are evaluated then, once; `when`,
// `agent`, `environment`, `steps` and `post` are closures run when the stage runs, as
// options wrappers -> agent (+ checkout scm) -> when -> environment -> steps -> post. A stage that throws
// marks the build and skips the later stages; matrix cells and parallel branches all run, then the first
// error is thrown. Steps follow their plugins: catchError (workflow-basic-steps CatchErrorStep: an
// interruption it catches sets ABORTED; catchInterruptions: false rethrows it), timeout (ends the running
// `sh` with SIGTERM, then SIGKILL after a grace, and throws an interruption), lock (lockable-resources:
// a label no resource carries fails at once, a name no resource has is an ephemeral resource), stash and
// unstash (a build's stashes; unstash adds to the workspace), sh (`/bin/sh -xe` in the workspace, with
// the build's parameters as environment variables).
//
// What it does not do: run anything in parallel (cells and branches run one after another), wait for a
// busy resource or a missing agent (it fails, naming what a real Jenkins would wait for), the sandbox,
// CPS serialization, restarts. A step it does not know is an error, never a silent success.
//
// Usage: groovy jenkins_runner.groovy CONFIG.json, where the file holds one build's config or a list of
// them, run in order (one JVM for many builds). Each build writes its console to the config's `console`
// file and one JSON event per line to its `events` file; the exit status is 0 whatever the builds' results
// (they are events).
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.util.concurrent.TimeUnit
import java.util.regex.Pattern

/** A FlowInterruptedException: a timeout or an abort; the build or stage it leaves is ABORTED. */
class Interrupted extends RuntimeException {
    Interrupted(String message) { super(message) }
}

/** An AbortException: a step that failed with a message (a non-zero `sh`, a missing stash). */
class StepFailed extends RuntimeException {
    StepFailed(String message) { super(message) }
}

class Results {
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']

    static String worse(String a, String b) { ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a }

    static String of(Throwable e) { e instanceof Interrupted ? 'ABORTED' : 'FAILURE' }
}

class Stage {
    String name
    Closure agent
    String agentKind = 'inherit'  // inherit | none | any | closure
    List<List> options = []       // [name, arguments evaluated when the model was built]
    List<Closure> when = []
    Map whenFlags = [:]
    Closure environment
    Closure steps
    Map<String, Closure> post = [:]
    Map<String, List> axes
    List<Stage> stages
    List<Stage> parallel
}

/** Delegate of `options { }`: records each option with its arguments, evaluated now, as Jenkins does. */
class OptionsDsl {
    List<List> options = []

    def timeout(Map a) { options << ['timeout', a] }
    def lock(Object a) { options << ['lock', a] }
    def buildDiscarder(Object a) { options << ['buildDiscarder', a] }
    def logRotator(Map a) { ['logRotator', a] }
    def skipDefaultCheckout(boolean on = true) { options << ['skipDefaultCheckout', on] }
    def disableConcurrentBuilds(Map a = [:]) { options << ['disableConcurrentBuilds', a] }
    def timestamps() { options << ['timestamps', null] }
}

class ParametersDsl {
    Map<String, Object> defaults = [:]

    def string(Map a) { defaults[a.name] = a.defaultValue ?: '' }
    def text(Map a) { defaults[a.name] = a.defaultValue ?: '' }
    def booleanParam(Map a) { defaults[a.name] = a.defaultValue as boolean }
    def choice(Map a) { defaults[a.name] = a.choices instanceof List ? a.choices[0] : a.choices.readLines()[0] }
}

class TriggersDsl {
    def cron(String spec) {}
}

class PostDsl {
    Map<String, Closure> conditions = [:]

    def always(Closure c) { conditions.always = c }
    def success(Closure c) { conditions.success = c }
    def failure(Closure c) { conditions.failure = c }
    def unstable(Closure c) { conditions.unstable = c }
    def aborted(Closure c) { conditions.aborted = c }
    def unsuccessful(Closure c) { conditions.unsuccessful = c }
    def cleanup(Closure c) { conditions.cleanup = c }
}

class WhenDsl {
    List<Closure> expressions = []
    Map flags = [:]

    def expression(Closure c) { expressions << c }
    def beforeAgent(boolean on) { flags.beforeAgent = on }
    def beforeOptions(boolean on) { flags.beforeOptions = on }
}

class AgentDsl {
    String label

    def label(String l) { label = l }
    def node(Closure c) { Runner.delegating(c, this).call() }
}

/** Delegate of `environment { }`: each assignment, evaluated when the stage runs. */
class EnvironmentDsl {
    Runner runner
    Map<String, String> values = [:]

    def propertyMissing(String name, Object value) { values[name] = value?.toString() }

    def propertyMissing(String name) {
        if (values.containsKey(name)) return values[name]
        throw new MissingPropertyException(name, EnvironmentDsl)
    }

    def credentials(String id) { runner.credential(id) }
}

class AxisDsl {
    String name
    List values = []

    def name(String n) { name = n }
    def values(Object... v) { values = v as List }
}

class AxesDsl {
    Map<String, List> axes = [:]

    def axis(Closure c) {
        def axis = new AxisDsl()
        Runner.delegating(c, axis).call()
        axes[axis.name] = axis.values
    }
}

class StagesDsl {
    List<Stage> stages = []

    def stage(String name, Closure c) {
        def builder = new StageDsl(stage: new Stage(name: name))
        Runner.delegating(c, builder).call()
        stages << builder.stage
    }
}

class MatrixDsl {
    Map<String, List> axes
    List<Stage> stages

    def axes(Closure c) {
        def dsl = new AxesDsl()
        Runner.delegating(c, dsl).call()
        axes = dsl.axes
    }

    def stages(Closure c) {
        def dsl = new StagesDsl()
        Runner.delegating(c, dsl).call()  // built once for every cell, as RuntimeASTTransformer does
        stages = dsl.stages
    }
}

/** Delegate of a `stage { }` (and of `pipeline { }`) while the model is built. */
class StageDsl {
    Stage stage

    String getNone() { 'none' }
    String getAny() { 'any' }

    def agent(Object a) {
        if (a instanceof Closure) {
            stage.agentKind = 'closure'
            stage.agent = a
        } else {
            stage.agentKind = a.toString()
        }
    }

    def options(Closure c) {
        def dsl = new OptionsDsl()
        Runner.delegating(c, dsl).call()
        stage.options = dsl.options
    }

    def when(Closure c) {
        def dsl = new WhenDsl()
        Runner.delegating(c, dsl).call()  // records the conditions; they are evaluated when the stage runs
        stage.when = dsl.expressions
        stage.whenFlags = dsl.flags
    }
    def environment(Closure c) { stage.environment = c }
    def steps(Closure c) { stage.steps = c }

    def post(Closure c) {
        def dsl = new PostDsl()
        Runner.delegating(c, dsl).call()
        stage.post = dsl.conditions
    }

    def matrix(Closure c) {
        def dsl = new MatrixDsl()
        Runner.delegating(c, dsl).call()
        stage.axes = dsl.axes
        stage.stages = dsl.stages
    }

    def stages(Closure c) {
        def dsl = new StagesDsl()
        Runner.delegating(c, dsl).call()
        stage.stages = dsl.stages
    }

    def parallel(Closure c) {
        def dsl = new StagesDsl()
        Runner.delegating(c, dsl).call()
        stage.parallel = dsl.stages
    }
}

/** Delegate of `pipeline { }`: the sections a stage has, and the job's parameters and triggers. */
class PipelineDsl extends StageDsl {
    Runner runner

    def parameters(Closure c) {
        def dsl = new ParametersDsl()
        Runner.delegating(c, dsl).call()
        runner.modelParams(dsl.defaults)  // the job's parameters, before any option reads them
    }

    def triggers(Closure c) { Runner.delegating(c, new TriggersDsl()).call() }
}

/** `env` as pipelines see it: reads the current environment, writes to the build's. */
class EnvAccess {
    Runner runner

    EnvAccess(Runner runner) { this.runner = runner }

    def getProperty(String name) { runner.env[name] }
    void setProperty(String name, Object value) { runner.env[name] = value?.toString() }
}

class CurrentBuild {
    Runner runner

    String getResult() { runner.result == 'SUCCESS' ? null : runner.result }
    String getCurrentResult() { runner.result }
    void setResult(String r) { runner.worsen(r) }
}

/** Names the script reads: its own variables, then `params`, `env`, `scm`, `currentBuild`, then the
 * environment (a bare DEVICE_TYPE in a matrix cell), else MissingPropertyException, as in Jenkins. */
class JenkinsBinding extends Binding {
    Runner runner

    JenkinsBinding(Runner runner) { this.runner = runner }

    Object getVariable(String name) {
        if (super.hasVariable(name)) return super.getVariable(name)
        switch (name) {
            case 'params': return runner.params
            case 'env': return new EnvAccess(runner)
            case 'scm': return 'scm'
            case 'currentBuild': return new CurrentBuild(runner: runner)
        }
        if (runner.env.containsKey(name)) return runner.env[name]
        throw new MissingPropertyException(name, Script)
    }

    boolean hasVariable(String name) {
        super.hasVariable(name) || name in ['params', 'env', 'scm', 'currentBuild'] || runner.env.containsKey(name)
    }
}

/** The steps a pipeline calls, as their plugins document them. */
class Steps {
    Runner runner

    def script(Closure body) { runner.run(body) }
    def echo(Object message) { runner.console(message.toString()) }
    def error(String message) { throw new StepFailed(message) }

    def unstable(Object message) {
        runner.console("WARNING: ${message}")
        runner.worsen('UNSTABLE')
        runner.worsenStage('UNSTABLE')
    }

    def sh(Object arguments) { runner.sh(arguments instanceof Map ? arguments : [script: arguments.toString()]) }

    def withEnv(List<String> pairs, Closure body) {
        runner.withEnv(pairs.collectEntries { it.toString().split('=', 2) as List }) { runner.run(body) }
    }

    def string(Map a) { [variable: a.variable, credentialsId: a.credentialsId] }

    def withCredentials(List bindings, Closure body) {
        runner.withEnv(bindings.collectEntries { [(it.variable): runner.credential(it.credentialsId)] }) { runner.run(body) }
    }

    def timeout(Map a, Closure body) { runner.timeout(a, body) }
    def lock(Object a, Closure body) { runner.lock(a instanceof Map ? a : [resource: a.toString()], body) }
    def node(String label, Closure body) { runner.node(label) { runner.run(body) } }

    def catchError(Map a = [:], Closure body) { runner.catchError(a, body) }

    def warnError(Object message, Closure body) {
        runner.catchError([buildResult: 'UNSTABLE', stageResult: 'UNSTABLE', message: message.toString()], body)
    }

    def checkout(Object scm) { runner.checkout() }
    def deleteDir() { runner.deleteDir() }
    def dir(String path, Closure body) { runner.dir(path) { runner.run(body) } }
    def fileExists(String path) { new File(runner.workspace(), path).exists() }
    def stash(Map a) { runner.stash(a) }
    def unstash(String name) { runner.unstash(name) }

    def archiveArtifacts(Object a) {
        Map args = a instanceof Map ? a : [artifacts: a.toString()]
        runner.publish('archiveArtifacts', args.artifacts, args.allowEmptyArchive as boolean,
                'No artifacts found that match the file pattern')
    }

    def junit(Object a) {
        Map args = a instanceof Map ? a : [testResults: a.toString()]
        runner.publish('junit', args.testResults, args.allowEmptyResults as boolean,
                'No test report files were found. Configuration error?')
    }

    def allure(Map a) { runner.allure(a) }
    def publishHTML(Map a) { runner.publishHtml(a.target as Map) }
}

class Runner {
    Map config
    Map<String, Object> params = [:]
    Map<String, String> env = [:]
    String result = 'SUCCESS'
    Script script
    Steps steps
    PrintWriter events
    PrintStream out
    File ws
    Map agent
    List<Long> deadlines = []
    List<String> stagePath = []
    Map<String, String> stageResults = [:]
    Set<String> held = [] as Set

    static Closure delegating(Closure c, Object delegate) {
        def copy = c.rehydrate(delegate, c.owner, c.thisObject)
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        return copy
    }

    def run(Closure body) { delegating(body, steps).call() }

    void event(Map e) {
        events.println(JsonOutput.toJson(e))
        events.flush()
    }

    synchronized void console(String line) {
        out.println(line)
        out.flush()
    }

    void worsen(String r) { result = Results.worse(result, r) }

    void worsenStage(String r) {
        def path = stagePath.join(' / ')
        stageResults[path] = Results.worse(stageResults[path] ?: 'SUCCESS', r)
    }

    File workspace() {
        if (ws == null) throw new StepFailed('Required context class hudson.FilePath is missing: this step needs a node (agent)')
        return ws
    }

    def withEnv(Map extra, Closure body) {
        def saved = new LinkedHashMap(env)
        extra.each { k, v -> env[k.toString()] = v?.toString() }
        try {
            return body.call()
        } finally {
            env.clear()
            env.putAll(saved)
        }
    }

    String credential(String id) {
        def secret = config.credentials?.get(id)
        if (secret == null) throw new StepFailed("Could not find credentials entry with ID '${id}'")
        return secret
    }

    // ---- build

    void build() {
        def binding = new JenkinsBinding(this)
        steps = new Steps(runner: this)
        env.putAll(System.getenv())
        env.putAll(config.env ?: [:])
        env.PATH = ((config.path ?: []) + [env.PATH]).join(File.pathSeparator)
        def build = config.build ?: [:]
        String number = (build.number ?: 1).toString(), job = build.job ?: 'hil'
        env.putAll([BUILD_NUMBER: number, BUILD_ID: number, JOB_NAME: job, BUILD_TAG: "jenkins-${job}-${number}".toString(),
                    BUILD_URL: (build.url ?: "http://jenkins.invalid/job/${job}/${number}/").toString()])
        def shell = new GroovyShell(binding)
        script = shell.parse(new File(config.jenkinsfile as String).text, 'WorkflowScript')  // Jenkins' name for it
        Stage pipeline = null
        script.metaClass.pipeline = { Closure c ->
            def dsl = new PipelineDsl(runner: this, stage: new Stage(name: '', agentKind: 'none'))
            delegating(c, dsl).call()
            pipeline = dsl.stage
        }
        script.metaClass.methodMissing = { String name, Object args -> steps.invokeMethod(name, args) }
        try {
            modelParams()
            script.run()
            if (pipeline == null) throw new StepFailed('the Jenkinsfile has no pipeline { } block')
        } catch (Throwable e) {
            // Jenkins builds the model, options' arguments included, before any stage runs.
            event([event: 'error', phase: 'model', message: message(e)])
            console("ERROR: ${message(e)}")
            worsen('FAILURE')
            return
        }
        Throwable first = null
        try {
            // A top-level agent is entered before the pipeline's options (Pipeline Syntax, "Differences
            // between top and stage level Agents"); a stage's options come before its agent.
            inAgent(pipeline) { wrappers(pipeline.options) {
                pipeline.stages.each { stage ->
                    if (first != null) {
                        skip(stage, 'skipped due to earlier failure(s)')
                        return
                    }
                    try {
                        runStage(stage)
                    } catch (Throwable e) {
                        first = e
                        worsen(Results.of(e))
                    }
                }
            } }
        } catch (Throwable e) {
            first = first ?: e
            worsen(Results.of(e))
        }
        if (first != null) event([event: 'error', phase: 'run', message: message(first)])
    }

    /** Parameters: the declared defaults, overridden by the build's; also environment variables. */
    void modelParams(Map<String, Object> declared = [:]) {
        def given = config.params ?: [:]
        params.clear()
        params.putAll(declared)
        params.putAll(given)
        params.each { k, v -> env[k] = v.toString() }
    }

    static String message(Throwable e) {
        def m = e.message ?: e.class.simpleName
        return e instanceof MissingPropertyException || e instanceof MissingMethodException ?
            "${e.class.name}: ${m}" : m
    }

    // ---- stages

    void skip(Stage stage, String why) {
        stageResults[(stagePath + [stage.name]).join(' / ')] = 'SKIPPED'
        event([event: 'stage', path: stagePath + [stage.name], status: 'SKIPPED', why: why])
    }

    void runStage(Stage stage) {
        stagePath.push(stage.name)
        def path = stagePath.join(' / ')
        stageResults[path] = 'SUCCESS'
        event([event: 'stage', path: stagePath.clone(), status: 'START'])
        Throwable error = null
        boolean skipped = false
        try {
            withEnv([STAGE_NAME: stage.name]) {
                if (stage.whenFlags.beforeOptions && !passes(stage)) {
                    skipped = true
                    return
                }
                wrappers(stage.options) {
                    inAgent(stage) {
                        if (!stage.whenFlags.beforeOptions && !passes(stage)) {
                            skipped = true
                            return
                        }
                        withEnv(environment(stage)) {
                            error = work(stage)
                        }
                    }
                }
            }
        } catch (Throwable e) {
            error = error ?: e
        }
        stagePath.pop()
        if (skipped) {
            stageResults[path] = 'SKIPPED'
            event([event: 'stage', path: stagePath + [stage.name], status: 'SKIPPED', why: 'when'])
            return
        }
        if (error != null) {
            stageResults[path] = Results.worse(stageResults[path], Results.of(error))
            event([event: 'stage', path: stagePath + [stage.name], status: stageResults[path], error: message(error)])
            throw error
        }
        event([event: 'stage', path: stagePath + [stage.name], status: stageResults[path]])
    }

    boolean passes(Stage stage) { stage.when.every { run(it) } }

    Map<String, String> environment(Stage stage) {
        if (stage.environment == null) return [:]
        def dsl = new EnvironmentDsl(runner: this)
        delegating(stage.environment, dsl).call()
        return dsl.values
    }

    /** The stage's own work; the error it ended with (post conditions ran), or null. */
    Throwable work(Stage stage) {
        Throwable error = null
        try {
            if (stage.axes != null) {
                cells(stage)
            } else if (stage.parallel != null) {
                branches(stage.parallel.collect { s -> [name: s.name, run: { runStage(s) }] })
            } else if (stage.stages != null) {
                Throwable first = null
                stage.stages.each { s ->
                    if (first != null) {
                        skip(s, 'skipped due to earlier failure(s)')
                        return
                    }
                    try {
                        runStage(s)
                    } catch (Throwable e) {
                        first = e
                    }
                }
                if (first != null) throw first
            } else if (stage.steps != null) {
                run(stage.steps)
            }
        } catch (Throwable e) {
            error = e
            worsen(Results.of(e))
        }
        return post(stage.post, error)
    }

    /** Matrix cells, one per combination of axis values, each running the (shared) inner stages. */
    void cells(Stage stage) {
        List<Map> combinations = [[:]]
        stage.axes.each { axis, values ->
            combinations = combinations.collectMany { c -> values.collect { v -> c + [(axis): v.toString()] } }
        }
        branches(combinations.collect { c ->
            def name = 'Matrix - ' + c.collect { k, v -> "${k} = '${v}'" }.join(', ')
            [name: name, run: {
                stagePath.push(name)
                try {
                    withEnv(c) {
                        Throwable first = null
                        stage.stages.each { s ->
                            if (first != null) {
                                skip(s, 'skipped due to earlier failure(s)')
                                return
                            }
                            try {
                                runStage(s)
                            } catch (Throwable e) {
                                first = e
                            }
                        }
                        if (first != null) throw first
                    }
                } finally {
                    stagePath.pop()
                }
            }]
        })
    }

    /** Parallel branches: every branch runs (here one after another); then the first error is thrown. */
    void branches(List<Map> branches) {
        Throwable first = null
        branches.each { b ->
            try {
                b.run.call()
            } catch (Throwable e) {
                first = first ?: e
            }
        }
        if (first != null) throw first
    }

    Throwable post(Map<String, Closure> post, Throwable error) {
        def conditions = [
            always: true,
            success: error == null,
            failure: error != null && !(error instanceof Interrupted),
            unstable: result == 'UNSTABLE',
            aborted: error instanceof Interrupted,
            unsuccessful: error != null || result != 'SUCCESS',
            cleanup: true,
        ]
        conditions.each { name, applies ->
            if (!applies || !post.containsKey(name)) return
            try {
                run(post[name])  // one block: the first step that throws skips the rest of it
            } catch (Throwable e) {
                event([event: 'post', condition: name, error: message(e)])
                worsen(Results.of(e))
                error = error ?: e
            }
        }
        return error
    }

    /** Option wrappers (lock, timeout), outermost first, in the order they are written. */
    def wrappers(List<List> options, Closure body) {
        def blocks = options.findAll { it[0] in ['lock', 'timeout'] }
        if (blocks.isEmpty()) return body.call()
        def (name, arguments) = blocks[0]
        def rest = { wrappers(blocks.drop(1), body) }
        return name == 'lock' ? lock(arguments instanceof Map ? arguments : [resource: arguments], rest) : timeout(arguments, rest)
    }

    def inAgent(Stage stage, Closure body) {
        if (stage.agentKind in ['inherit', 'none']) return body.call()
        String label = null
        if (stage.agentKind == 'closure') {
            def dsl = new AgentDsl()
            delegating(stage.agent, dsl).call()
            label = dsl.label
        }
        // Declarative checks out the job's SCM on entering an agent, when the job has one.
        boolean checkout = config.scm && !stage.options.any { it[0] == 'skipDefaultCheckout' && it[1] }
        return node(label) {
            if (checkout) this.checkout()
            body.call()
        }
    }

    // ---- steps

    def node(String label, Closure body) {
        def agent = (config.agents ?: []).find { label == null || it.name == label || label in it.labels }
        if (agent == null) {
            throw new StepFailed("no agent has the label '${label}' (a real Jenkins would wait for one)")
        }
        def savedWs = ws, savedAgent = this.agent
        ws = new File(agent.root as String, "workspace/${env.JOB_NAME}")
        ws.mkdirs()
        this.agent = agent
        event([event: 'node', label: label, agent: agent.name, workspace: ws.path])
        try {
            return withEnv([NODE_NAME: agent.name, NODE_LABELS: ([agent.name] + agent.labels).join(' '), WORKSPACE: ws.path,
                            WORKSPACE_TMP: ws.path + '@tmp', EXECUTOR_NUMBER: '0'] + (agent.env ?: [:])) { body.call() }
        } finally {
            ws = savedWs
            this.agent = savedAgent
        }
    }

    def lock(Map a, Closure body) {
        String label = a.label ?: null, resource = a.resource ?: null
        if (label && resource) throw new StepFailed('Resource label and resource name cannot be specified simultaneously.')
        def resources = config.resources ?: []
        List<String> names
        if (label) {
            def pool = resources.findAll { label in it.labels }
            if (pool.isEmpty()) throw new StepFailed("The resource label does not exist: ${label}.")
            def free = pool.findAll { !(it.name in held) }*.name
            int quantity = (a.quantity ?: 0) as int
            names = quantity > 0 ? free.take(quantity) : (free.size() == pool.size() ? free : [])
            if (names.isEmpty() || (quantity > 0 && names.size() < quantity)) names = null
        } else {
            boolean declared = resources.any { it.name == resource }
            if (!declared) event([event: 'lock', resources: [resource], ephemeral: true])
            names = resource in held ? null : [resource]
        }
        if (names == null) {
            if (a.skipIfLocked) {
                event([event: 'lock', skipped: true, label: label, resource: resource])
                return null
            }
            throw new StepFailed("[${label ?: resource}] is locked, waiting... (by this very build: it would wait forever)")
        }
        held.addAll(names)
        event([event: 'lock', resources: names, variable: a.variable])
        def extra = [:]
        if (a.variable) {
            extra[a.variable] = names.join(',')
            names.eachWithIndex { n, i -> extra["${a.variable}${i}".toString()] = n }
        }
        try {
            return withEnv(extra) { body.call() }
        } finally {
            held.removeAll(names)
            event([event: 'unlock', resources: names])
        }
    }

    def timeout(Map a, Closure body) {
        def unit = TimeUnit.valueOf((a.unit ?: 'MINUTES').toString())
        long deadline = System.currentTimeMillis() + unit.toMillis(a.time as long)
        deadlines.push(deadline)
        try {
            return body.call()
        } finally {
            deadlines.pop()
        }
    }

    def catchError(Map a, Closure body) {
        try {
            return run(body)
        } catch (Throwable e) {
            boolean interruption = e instanceof Interrupted
            if (interruption && a.catchInterruptions == false) throw e
            String build = interruption ? 'ABORTED' : (a.buildResult ?: 'FAILURE')
            String stage = interruption ? 'ABORTED' : (a.stageResult ?: 'SUCCESS')
            event([event: 'caught', error: message(e), buildResult: build, stageResult: stage])
            console("ERROR: ${a.message ?: message(e)}")
            worsen(build)
            worsenStage(stage)
            return null
        }
    }

    def sh(Map a) {
        a = a + [script: a.script.toString()]
        File dir = workspace()
        File tmp = new File(dir.path + '@tmp')
        tmp.mkdirs()
        File file = File.createTempFile('script', '.sh', tmp)
        file.text = a.script
        List<String> command = a.script.startsWith('#!') ? [file.path] : ['/bin/sh', '-xe', file.path]
        if (a.script.startsWith('#!')) file.setExecutable(true)
        def builder = new ProcessBuilder(command).directory(dir).redirectErrorStream(true)
        builder.environment().clear()
        builder.environment().putAll(env.findAll { k, v -> v != null })
        long started = System.currentTimeMillis()
        Process process = builder.start()
        def captured = new StringBuilder()
        def pump = Thread.start {
            process.inputStream.eachLine { line ->
                if (a.returnStdout) captured.append(line).append('\n') else console(line)
            }
        }
        long left = deadlines.isEmpty() ? Long.MAX_VALUE : deadlines.min() - System.currentTimeMillis()
        boolean done = left > 0 && process.waitFor(left, TimeUnit.MILLISECONDS)
        if (!done) {
            stop(process)
            pump.join(10000)
            event([event: 'sh', script: a.script, cwd: dir.path, status: null, timedOut: true,
                   seconds: (System.currentTimeMillis() - started) / 1000.0])
            file.delete()
            throw new Interrupted('Timeout has been exceeded')
        }
        pump.join()
        int status = process.exitValue()
        file.delete()
        event([event: 'sh', script: a.script, cwd: dir.path, status: status, seconds: (System.currentTimeMillis() - started) / 1000.0])
        if (a.returnStdout) {
            if (status != 0) throw new StepFailed("script returned exit code ${status}")
            return captured.toString()
        }
        if (a.returnStatus) return status
        if (status != 0) throw new StepFailed("script returned exit code ${status}")
        return null
    }

    /** What Jenkins does to a step it interrupts: SIGTERM to the process tree, SIGKILL after a grace. */
    void stop(Process process) {
        def tree = [process.toHandle()] + process.toHandle().descendants().collect()
        tree.each { it.destroy() }
        long grace = ((config.kill_grace_seconds ?: 5) as long) * 1000
        long until = System.currentTimeMillis() + grace
        while (tree.any { it.alive } && System.currentTimeMillis() < until) Thread.sleep(100)
        tree.findAll { it.alive }.each { it.destroyForcibly() }
        process.waitFor()
    }

    void checkout() {
        if (!config.scm) throw new StepFailed("'checkout scm' is only available when using \"Multibranch Pipeline\" or \"Pipeline script from SCM\"")
        File source = new File(config.scm as String)
        copyTree(source, workspace(), files(source, '**', null))
        event([event: 'checkout', workspace: workspace().path])
    }

    void deleteDir() {
        workspace().deleteDir()
        workspace().mkdirs()
    }

    def dir(String path, Closure body) {
        def saved = ws
        ws = new File(workspace(), path)
        ws.mkdirs()
        try {
            return body.call()
        } finally {
            ws = saved
        }
    }

    void stash(Map a) {
        File dir = workspace()
        def matched = files(dir, a.includes ?: '**', a.excludes)
        if (matched.isEmpty() && !a.allowEmpty) throw new StepFailed("No files included in stash '${a.name}'")
        File store = new File(config.stashes as String, a.name as String)
        store.deleteDir()
        store.mkdirs()
        copyTree(dir, store, matched)
        event([event: 'stash', name: a.name, files: matched, bytes: matched.sum(0L) { new File(dir, it).length() }])
    }

    void unstash(String name) {
        File store = new File(config.stashes as String, name)
        if (!store.isDirectory()) throw new StepFailed("No such saved stash '${name}'")
        def stashed = files(store, '**', null)
        copyTree(store, workspace(), stashed)
        event([event: 'unstash', name: name, files: stashed])
    }

    void publish(String step, Object patterns, boolean allowEmpty, String emptyMessage) {
        def matched = files(workspace(), patterns.toString(), null)
        if (matched.isEmpty() && !allowEmpty) throw new StepFailed(emptyMessage)
        if (step == 'archiveArtifacts') copyTree(workspace(), new File(config.archive as String), matched)
        event([event: step, files: matched])
    }

    void allure(Map a) {
        if (!('allure' in (config.tools ?: []))) {
            throw new StepFailed("Can't find allure commandline on ${agent?.name}")
        }
        def paths = (a.results ?: []).collect { it.path.toString() }
        event([event: 'allure', paths: paths, present: paths.findAll { new File(workspace(), it).isDirectory() }])
    }

    void publishHtml(Map target) {
        File report = new File(new File(workspace(), target.reportDir as String), target.reportFiles as String)
        if (!report.exists() && !target.allowMissing) throw new StepFailed("Specified HTML directory '${report}' does not exist.")
        event([event: 'publishHTML', report: report.path, present: report.exists()])
    }

    // ---- files, with Ant patterns as stash, archiveArtifacts and junit take them

    static Pattern ant(String pattern) {
        String p = pattern.trim().replace('\\', '/')
        if (p.endsWith('/')) p += '**'
        def out = new StringBuilder()
        int i = 0
        while (i < p.length()) {
            if (p.startsWith('**/', i)) { out << '(?:.*/)?'; i += 3 }
            else if (p.startsWith('/**', i) && i + 3 == p.length()) { out << '(?:/.*)?'; i += 3 }
            else if (p.startsWith('**', i)) { out << '.*'; i += 2 }
            else if (p.charAt(i) == '*' as char) { out << '[^/]*'; i++ }
            else if (p.charAt(i) == '?' as char) { out << '[^/]'; i++ }
            else { out << Pattern.quote(p.substring(i, i + 1)); i++ }
        }
        return Pattern.compile(out.toString())
    }

    static List<String> files(File root, String includes, Object excludes) {
        def inc = includes.split(',').findAll { it.trim() }.collect { ant(it) }
        def exc = excludes ? excludes.toString().split(',').findAll { it.trim() }.collect { ant(it) } : []
        def found = []
        if (!root.isDirectory()) return found
        root.eachFileRecurse(groovy.io.FileType.FILES) { f ->
            def rel = root.toPath().relativize(f.toPath()).toString().replace('\\', '/')
            if (inc.any { it.matcher(rel).matches() } && !exc.any { it.matcher(rel).matches() }) found << rel
        }
        return found.sort()
    }

    static void copyTree(File from, File to, List<String> relative) {
        relative.each { rel ->
            File target = new File(to, rel)
            target.parentFile.mkdirs()
            Files.copy(new File(from, rel).toPath(), target.toPath(), StandardCopyOption.REPLACE_EXISTING)
        }
    }
}

def configs = new JsonSlurper().parse(new File(args[0]))
(configs instanceof List ? configs : [configs]).each { config ->
    def runner = new Runner(config: config)
    runner.events = new PrintWriter(new FileWriter(config.events as String))
    runner.out = new PrintStream(new FileOutputStream(config.console as String), true, 'UTF-8')
    try {
        runner.build()
    } catch (Throwable e) {
        runner.console("runner: ${e}")  // a fault of the runner itself: the build has no result then
        throw e
    } finally {
        runner.event([event: 'result', result: runner.result, stages: runner.stageResults])
        runner.events.close()
        runner.out.close()
    }
}
