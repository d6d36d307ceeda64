// Run a Declarative Jenkinsfile the way Jenkins would, without Jenkins, for tests/support/jenkins_harness.py.
//
// It follows pipeline-model-definition's evaluation order (RuntimeASTTransformer, ModelInterpreter): the
// model is built when the build starts, and stage `options` arguments are evaluated then, once; `when`,
// `agent`, `environment`, `steps` and `post` are closures run when the stage runs, as
// options wrappers -> agent (+ checkout scm) -> when -> environment -> steps -> post. A stage that throws
// marks the build and skips the later stages; matrix cells all run (one after another), then the first
// error is thrown. Steps follow their plugins:
// - timeout (workflow-basic-steps TimeoutStepExecution): ends the running step with SIGTERM, then SIGKILL
//   after a grace, and throws an interruption; once that interruption has left the timeout block that fired
//   it, it is no longer an "actual" interruption (ExceededTimeout's node id matches: setActualInterruption
//   false), so catchError(catchInterruptions: false) outside the block catches it and the build goes on,
//   ABORTED.
// - catchError (CatchErrorStep): rethrows only an actual interruption when catchInterruptions is false; a
//   caught interruption sets the build and the stage to its result (ABORTED), anything else to
//   buildResult and stageResult.
// - lock (lockable-resources): a label is a label or a label expression (`a && !b`); a label no resource
//   matches fails at once (LockStepResource.validate), a name no resource has is an ephemeral resource;
//   skipIfLocked skips the body; timeoutForAllocateResource fails the step, as an ordinary failure, with
//   LockWaitTimeoutException's message; updateLock adds, removes or sets labels and notes.
// - node (workflow-durable-task-step): waits for an online agent carrying the label, however long.
// - parallel (workflow-cps ParallelStep): every branch runs, in a thread of its own; with failFast the first
//   failure stops the others, and is the one thrown.
// - waitUntil, stash/unstash (a build's stashes; unstash adds to the workspace), sh (`/bin/sh -xe` in the
//   workspace, with the build's parameters as environment variables), allure (allure-plugin: with no
//   `commandline`, the only installation or an error naming them), writeFile/readFile, updateLock.
//
// Time: a wait that nothing in the lab will ever end (a resource a build outside holds, an agent that is
// offline) does not sleep. The harness keeps a clock of its own, real time plus the time such waits skip,
// and advances it to when the wait would end: the innermost `timeout` that would fire, the lock's
// timeoutForAllocateResource, or the waitUntil condition that reads the clock (currentBuild.duration). A wait
// that nothing would ever end is an error naming it. So a test of a 60-minute wait takes no time.
//
// Threads: a `parallel` step's branches run at once, each with its own environment, workspace and
// timeouts; every step runs in the context of the thread that calls it.
//
// What it does not do: run matrix cells at once, wait for a resource this build itself holds, count
// executors (an agent is online with one free, offline, or `busy` for longer than any build waits), the
// sandbox, CPS serialization, restarts. A step it does not know is an error, never a silent success.
//
// Usage: groovy jenkins_runner.groovy CONFIG.json, where the file holds one build's config or a list of
// them, run in order (one JVM for many builds; the Lockable Resources carry over from build to build). Each
// build writes its console to the config's `console` file and one JSON event per line to its `events` file;
// the exit status is 0 whatever the builds' results (they are events).
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.util.concurrent.TimeUnit
import java.util.regex.Pattern

/** A FlowInterruptedException: a timeout or an abort; the build or stage it leaves is ABORTED. */
class Interrupted extends RuntimeException {
    /** FlowInterruptedException.isActualInterruption: false once a timeout's own interruption left it. */
    boolean actual = true
    /** The timeout step whose deadline fired, if one did (ExceededTimeout's node id). */
    String timeoutId

    Interrupted(String message, String timeoutId = null) {
        super(message)
        this.timeoutId = timeoutId
    }
}

/** An AbortException or another failure with a message (a non-zero `sh`, a missing stash, a lock error). */
class StepFailed extends RuntimeException {
    StepFailed(String message) { super(message) }
}

class Results {
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']

    static String worse(String a, String b) { ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a }

    static String of(Throwable e) { e instanceof Interrupted ? 'ABORTED' : 'FAILURE' }
}

/** Jenkins label expressions (hudson.model.Label.parseExpression): atoms, !, &&, ||, ->, <->, parentheses. */
class Labels {
    static boolean matches(String expression, Collection labels) {
        def set = labels.collect { it.toString() } as Set
        if (expression.trim() in set) return true
        def tokens = tokenize(expression)
        def parser = new LabelParser(tokens: tokens, labels: set)
        boolean result = parser.iff()
        if (parser.at < tokens.size()) throw new StepFailed("Invalid label expression: ${expression}")
        return result
    }

    static List<String> tokenize(String text) {
        def tokens = []
        int i = 0
        while (i < text.length()) {
            char c = text.charAt(i)
            if (Character.isWhitespace(c)) { i++; continue }
            String op = ['<->', '->', '&&', '||', '!', '(', ')'].find { text.startsWith(it, i) }
            if (op != null) { tokens << op; i += op.length(); continue }
            int j = i
            while (j < text.length() && !Character.isWhitespace(text.charAt(j)) &&
                    !['<->', '->', '&&', '||', '!', '(', ')'].any { text.startsWith(it, j) }) j++
            tokens << text.substring(i, j)
            i = j
        }
        return tokens
    }
}

class LabelParser {
    List<String> tokens
    Set<String> labels
    int at = 0

    String peek() { at < tokens.size() ? tokens[at] : null }

    boolean iff() {
        boolean left = implies()
        while (peek() == '<->') { at++; boolean right = implies(); left = (left == right) }
        return left
    }

    boolean implies() {
        boolean left = or()
        while (peek() == '->') { at++; boolean right = or(); left = !left || right }
        return left
    }

    boolean or() {
        boolean left = and()
        while (peek() == '||') { at++; boolean right = and(); left = left || right }
        return left
    }

    boolean and() {
        boolean left = not()
        while (peek() == '&&') { at++; boolean right = not(); left = left && right }
        return left
    }

    boolean not() {
        if (peek() == '!') { at++; return !not() }
        if (peek() == '(') {
            at++
            boolean inner = iff()
            if (peek() != ')') throw new StepFailed('Invalid label expression: unbalanced parentheses')
            at++
            return inner
        }
        String atom = peek()
        if (atom == null) throw new StepFailed('Invalid label expression: it ends too soon')
        at++
        return atom in labels
    }
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

/** `currentBuild` (workflow-support RunWrapper): result, duration (of a running build: since its start). */
class CurrentBuild {
    Runner runner

    String getResult() { runner.root.result == 'SUCCESS' ? null : runner.root.result }
    String getCurrentResult() { runner.root.result }
    void setResult(String r) { runner.worsen(r) }
    long getDuration() { runner.now() - runner.root.started }
    String getDescription() { runner.root.description }

    void setDescription(String d) {
        runner.root.description = d
        runner.event([event: 'description', description: d])
    }
}

/** Names the script reads: its own variables, then `params`, `env`, `scm`, `currentBuild`, then the
 * environment (a bare DEVICE_TYPE in a matrix cell), else MissingPropertyException, as in Jenkins. */
class JenkinsBinding extends Binding {
    Runner runner

    JenkinsBinding(Runner runner) { this.runner = runner }

    Object getVariable(String name) {
        if (super.hasVariable(name)) return super.getVariable(name)
        Runner here = Runner.current() ?: runner
        switch (name) {
            case 'params': return runner.params
            case 'env': return new EnvAccess(here)
            case 'scm': return 'scm'
            case 'currentBuild': return new CurrentBuild(runner: here)
        }
        if (here.env.containsKey(name)) return here.env[name]
        throw new MissingPropertyException(name, Script)
    }

    boolean hasVariable(String name) {
        Runner here = Runner.current() ?: runner
        super.hasVariable(name) || name in ['params', 'env', 'scm', 'currentBuild'] || here.env.containsKey(name)
    }
}

/** The steps a pipeline calls, as their plugins document them. A step runs in the context of the thread that
 * calls it (a parallel branch's, or the build's), whatever closure it is called from. */
class Steps {
    Runner home

    Runner getRunner() { Runner.current() ?: home }

    def script(Closure body) { runner.run(body) }
    def echo(Object message) { runner.console(message.toString()) }
    def error(Object message) { throw new StepFailed(message.toString()) }

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

    def timeout(Map a, Closure body) { runner.timeout(a) { runner.run(body) } }
    def timeout(Number minutes, Closure body) { runner.timeout([time: minutes]) { runner.run(body) } }
    def lock(Object a, Closure body) { runner.lock(a instanceof Map ? a : [resource: a.toString()]) { runner.run(body) } }
    def updateLock(Map a) { runner.updateLock(a) }
    def node(String label, Closure body) { runner.node(label) { runner.run(body) } }
    def parallel(Map branches) { runner.parallel(branches) }
    def waitUntil(Map a = [:], Closure body) { runner.waitUntil(a, body) }

    def catchError(Map a = [:], Closure body) { runner.catchError(a, body) }

    def warnError(Object message, Closure body) {
        runner.catchError([buildResult: 'UNSTABLE', stageResult: 'UNSTABLE', message: message.toString()], body)
    }

    def checkout(Object scm) { runner.checkout() }
    def deleteDir() { runner.deleteDir() }
    def dir(String path, Closure body) { runner.dir(path) { runner.run(body) } }
    def fileExists(String path) { new File(runner.workspace(), path).exists() }
    def writeFile(Map a) { runner.writeFile(a) }
    def readFile(Object a) { runner.readFile(a instanceof Map ? a.file.toString() : a.toString()) }
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

/** One branch of a `parallel` step, as its siblings see it. */
class Branch {
    String name
    Thread thread
    Runner runner
    List<Branch> group
    volatile boolean done = false
    volatile boolean blocked = false  // in a wait nothing in the lab will end
    volatile Interrupted stop          // why it was interrupted (failFast)
}

/** What the builds of one run share: the Lockable Resources, as the Jenkins admin declared them and as
 * updateLock has changed them since. */
class Lab {
    List<Map> resources = []
}

class Runner {
    static final ThreadLocal<Runner> CURRENT = new ThreadLocal<Runner>()
    // An interrupted wait that nothing ends: how far the clock may be advanced before it is an error.
    static final long FOREVER = TimeUnit.DAYS.toMillis(30)

    static Runner current() { CURRENT.get() }

    // Shared by every branch of one build (`root` is the build's own context).
    Runner root
    Map config
    Map<String, Object> params = [:]
    Lab lab
    Script script
    PrintWriter events
    PrintStream out
    Map<String, String> stageResults = Collections.synchronizedMap(new LinkedHashMap<String, String>())
    Set<String> held = Collections.synchronizedSet(new LinkedHashSet<String>())
    String result = 'SUCCESS'  // the root's
    long offset = 0            // the root's: time skipped by waits nothing would end, in ms
    long started               // the root's
    String description         // the root's

    // This context's own: the main one, or a parallel branch's.
    Steps steps
    Map<String, String> env = [:]
    File ws
    Map agent
    List<Map> deadlines = new java.util.concurrent.CopyOnWriteArrayList<Map>()  // [at: clock ms, id], outermost first
    List<String> stagePath = []
    Branch branch

    static Closure delegating(Closure c, Object delegate) {
        def copy = c.rehydrate(delegate, c.owner, c.thisObject)
        copy.resolveStrategy = Closure.DELEGATE_FIRST
        return copy
    }

    def run(Closure body) { delegating(body, steps).call() }

    /** The build's clock: real time plus the time skipped by waits nothing would end. */
    long now() { System.currentTimeMillis() + root.offset }

    void event(Map e) {
        synchronized (events) {
            events.println(JsonOutput.toJson(e + [clock: now() - root.started]))
            events.flush()
        }
    }

    void console(String line) {
        synchronized (out) {
            out.println(line)
            out.flush()
        }
    }

    void worsen(String r) {
        synchronized (root) { root.result = Results.worse(root.result, r) }
    }

    void worsenStage(String r) {
        def path = stagePath.join(' / ')
        synchronized (stageResults) { stageResults[path] = Results.worse(stageResults[path] ?: 'SUCCESS', r) }
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

    /** A context for a parallel branch: the same build, its own environment, workspace and waits. */
    Runner fork(Branch b) {
        def r = new Runner(root: root, config: config, params: params, lab: lab, script: script, events: events,
                out: out, stageResults: stageResults, held: held, env: new LinkedHashMap(env), ws: ws, agent: agent,
                deadlines: new java.util.concurrent.CopyOnWriteArrayList<Map>(deadlines), stagePath: new ArrayList(stagePath), branch: b)
        r.steps = new Steps(home: r)
        return r
    }

    // ---- build

    void build() {
        root = this
        started = System.currentTimeMillis()
        CURRENT.set(this)
        def binding = new JenkinsBinding(this)
        steps = new Steps(home: this)
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
        script.metaClass.methodMissing = { String name, Object args -> (current() ?: this).steps.invokeMethod(name, args) }
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
                sequentially(stage.parallel.collect { s -> [name: s.name, run: { runStage(s) }] })
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
        sequentially(combinations.collect { c ->
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

    /** Declarative parallel stages and matrix cells: every one runs (here one after another); then the
     * first error is thrown. */
    void sequentially(List<Map> branches) {
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
            unstable: root.result == 'UNSTABLE',
            aborted: error instanceof Interrupted,
            unsuccessful: error != null || root.result != 'SUCCESS',
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

    // ---- waiting

    /** The timeout that fires first, or null. */
    Map nearestDeadline() { deadlines.min { it.at } }

    /** Let `ms` of the build's time pass in a wait nothing in the lab ends, unless a timeout fires first. */
    void skipTime(long ms) {
        def d = nearestDeadline()
        if (d != null && d.at <= now() + ms) {
            root.offset += Math.max(0L, (d.at as long) - now())
            throw new Interrupted('Timeout has been exceeded', d.id as String)
        }
        synchronized (root) { root.offset += ms }
    }

    /** The interruption a stopped branch ends its step with. */
    Interrupted interruption() { branch?.stop ?: new Interrupted('interrupted') }

    /** The first deadline of this context and of its siblings that wait for ever, as clock ms, or null. */
    Long firstDeadline() {
        def contexts = branch == null ? [this] : branch.group.findAll { !it.done }*.runner
        def ats = contexts.collect { it?.nearestDeadline()?.at }.findAll { it != null }.collect { it as long }
        return ats ? ats.min() : null
    }

    /** True when only the passing of time can change what this context waits for: it is not in a parallel
     * step, or every other branch of it has finished or waits for ever. */
    boolean aloneWithTheClock() {
        branch == null || branch.group.every { it.is(branch) || it.done || it.blocked }
    }

    /** Nothing but time can end any wait now: let it pass, by `ms` at most, and no further than the first
     * deadline; false when no deadline would ever end the waits. */
    boolean letTimePass(long ms) {
        Long first = firstDeadline()
        long step = first == null ? ms : Math.min(ms, Math.max(0L, first - now()))
        if (step == Long.MAX_VALUE) return false
        synchronized (root) { root.offset += step }
        return true
    }

    /** A wait nothing in the lab will ever end. In a parallel branch it lasts until a sibling stops the branch
     * or, once every branch waits, until the first deadline any of them has; anywhere else the innermost
     * timeout fires, and without one the build would hang, which is an error. */
    void waitForever(String what) {
        if (branch == null) {
            if (nearestDeadline() != null) skipTime(FOREVER)  // throws: the deadline comes first
            throw new StepFailed("${what}: nothing would ever end this wait (a real Jenkins would wait for ever)")
        }
        branch.blocked = true
        try {
            while (true) {
                def d = nearestDeadline()
                if (d != null && now() >= (d.at as long)) throw new Interrupted('Timeout has been exceeded', d.id as String)
                if (aloneWithTheClock() && !letTimePass(Long.MAX_VALUE)) {
                    throw new StepFailed("${what}: nothing would ever end this wait (a real Jenkins would wait for ever)")
                }
                Thread.sleep(20)
            }
        } catch (InterruptedException ignored) {
            throw interruption()
        } finally {
            branch.blocked = false
        }
    }

    def waitUntil(Map a, Closure body) {
        long period = Math.max(250L, (a.initialRecurrencePeriod ?: 250) as long)
        long waited = 0
        while (true) {
            if (Thread.interrupted()) throw interruption()
            if (run(body)) return null
            def d = nearestDeadline()
            if (d != null && now() >= (d.at as long)) throw new Interrupted('Timeout has been exceeded', d.id as String)
            if (aloneWithTheClock()) {
                letTimePass(period)
                waited += period
                if (waited > FOREVER) throw new StepFailed('waitUntil: the condition never became true (a real Jenkins would wait for ever)')
            } else {
                try {
                    Thread.sleep(20)
                } catch (InterruptedException ignored) {
                    throw interruption()
                }
            }
            period = Math.min((long) (period * 1.2), 15000L)
        }
    }

    def parallel(Map spec) {
        boolean failFast = spec.failFast as boolean
        def bodies = spec.findAll { k, v -> k != 'failFast' }
        List<Branch> group = bodies.keySet().collect { new Branch(name: it.toString()) }
        List<Throwable> failures = []
        boolean[] stopSent = [false] as boolean[]
        event([event: 'parallel', branches: group*.name, failFast: failFast])
        group.each { b ->
            b.group = group
            Runner context = fork(b)
            b.runner = context
            Closure body = bodies[b.name] as Closure
            b.thread = Thread.start {
                CURRENT.set(context)
                Throwable failed = null
                try {
                    context.run(body)
                } catch (Throwable e) {
                    failed = e
                    synchronized (group) {
                        failures << e
                        console("Failed in branch ${b.name}")
                        if (failFast && !stopSent[0]) {
                            stopSent[0] = true
                            group.findAll { !it.is(b) && !it.done }.each { o ->
                                o.stop = new Interrupted("Failed in branch ${b.name}")
                                o.thread.interrupt()
                            }
                        }
                    }
                } finally {
                    b.done = true
                    event([event: 'branch', name: b.name, error: failed == null ? null : message(failed)])
                }
            }
        }
        group.each { it.thread.join() }
        event([event: 'parallel end', branches: group*.name, failures: failures.collect { message(it) }])
        if (!failures.isEmpty()) throw failures[0]
        return null
    }

    // ---- steps

    def node(String label, Closure body) {
        def agents = config.agents ?: []
        def matching = agents.findAll { label == null || Labels.matches(label, [it.name] + (it.labels ?: [])) }
        def agent = matching.find { it.online != false && !it.busy }
        if (agent == null) {
            String why = !matching ? "There are no nodes with the label ‘${label}’" :
                matching.any { it.online != false } ? "Waiting for next available executor on ‘${label}’" :
                "‘${label}’ is offline"
            console(why)
            event([event: 'node', label: label, waiting: true, why: why])
            waitForever("node('${label}')")
        }
        def savedWs = ws, savedAgent = this.agent
        ws = new File(agent.root as String, "workspace/${env.JOB_NAME}")
        ws.mkdirs()
        this.agent = agent
        console("Running on ${agent.name} in ${ws.path}")
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
        if (label && resource) throw new StepFailed('Label and resource name cannot be specified simultaneously.')
        if (!label && !resource) throw new StepFailed('Either resource label or resource name must be specified.')
        List<Map> pool
        if (label) {
            pool = lab.resources.findAll { Labels.matches(label, it.labels ?: []) }
            if (pool.isEmpty()) throw new StepFailed("The resource label does not exist: ${label}.")
        } else {
            def declared = lab.resources.find { it.name == resource }
            if (declared == null) event([event: 'lock', resources: [resource], ephemeral: true])
            pool = [declared ?: [name: resource, labels: []]]
        }
        int quantity = label ? ((a.quantity ?: 0) as int) : 1
        String what = label ? "Label: ${label}" + (quantity > 0 ? ", Quantity: ${quantity}" : '') : "Resource: ${resource}"
        long allocate = (a.timeoutForAllocateResource ?: 0) as long
        def unit = TimeUnit.valueOf((a.timeoutUnit ?: 'MINUTES').toString())
        long asked = now()
        boolean said = false
        List<String> names = null
        while (true) {
            synchronized (held) {
                def free = pool.findAll { !(it.name in held) && !busy(it) }
                def taken = quantity > 0 ? (free.size() >= quantity ? free.take(quantity) : null) : (free.size() == pool.size() ? free : null)
                if (taken != null) {
                    names = taken*.name
                    held.addAll(names)
                }
            }
            if (names != null || a.skipIfLocked) break
            if (!said) {
                console("[${what}] is not free, waiting for execution ..." + (allocate > 0 ? " (timeout: ${allocate} ${unit.name().toLowerCase()})" : ''))
                event([event: 'lock', waiting: true, label: label, resource: resource, timeout: allocate])
                said = true
            }
            // The next resource a build outside frees, if one ever does; this harness waits for no other.
            def frees = pool.findAll { busy(it) && !it.busy && it.free_after }.collect { root.started + (long) ((it.free_after as double) * 60000) }
            long until = frees ? frees.min() : Long.MAX_VALUE
            long deadline = allocate > 0 ? asked + unit.toMillis(allocate) : Long.MAX_VALUE
            if (until < deadline && until != Long.MAX_VALUE) {
                skipTime(Math.max(0L, until - now()))  // throws if a timeout around the lock fires first
                continue
            }
            if (pool.any { it.name in held }) {
                throw new StepFailed("[${what}] is held by this very build: the harness does not wait for it")
            }
            if (allocate > 0) {
                skipTime(Math.max(0L, deadline - now()))
                String message = "[${what}] timed out waiting for resource allocation after ${allocate} ${unit.name().toLowerCase()}"
                console(message)
                throw new StepFailed(message)  // LockWaitTimeoutException: an ordinary failure, not an interruption
            }
            waitForever("lock(${what})")
        }
        if (names == null) {
            console("[${what}] is not free, skipping execution ...")
            event([event: 'lock', skipped: true, label: label, resource: resource])
            return null
        }
        event([event: 'lock', resources: names, variable: a.variable, label: label])
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

    /** Held by a build outside this one: for ever (`busy`), or until `free_after` minutes into this build. */
    boolean busy(Map resource) {
        if (resource.busy) return true
        return resource.free_after && now() < root.started + (long) ((resource.free_after as double) * 60000)
    }

    /** lockable-resources UpdateLockStep: labels and notes of a resource, as the Lockable Resources page
     * would show them; the change lasts beyond the build. */
    def updateLock(Map a) {
        String name = a.resource?.toString()?.trim()
        if (!name) throw new StepFailed('The resource name must be specified.')
        Map changed
        synchronized (lab) {
            def r = lab.resources.find { it.name == name }
            if (r == null) {
                if (!a.createResource) throw new StepFailed("Resource ${name} does not exist. Use createResource: true to create it.")
                r = [name: name, labels: [], busy: false]
                lab.resources << r
            }
            def words = { Object s -> (s ?: '').toString().trim().split(/\s+/).findAll { it } }
            if (a.setLabels != null && a.setLabels.toString().trim()) {
                r.labels = words(a.setLabels)
            } else {
                def labels = new ArrayList(r.labels ?: [])
                words(a.addLabels).each { if (!(it in labels)) labels << it }
                labels.removeAll(words(a.removeLabels))
                r.labels = labels
            }
            if (a.setNote != null) r.note = a.setNote.toString().trim()
            changed = new LinkedHashMap(r)
        }
        console("Resource [${name}] updated.")
        event([event: 'updateLock', resource: name, labels: changed.labels, note: changed.note])
        return null
    }

    def timeout(Map a, Closure body) {
        def unit = TimeUnit.valueOf((a.unit ?: 'MINUTES').toString())
        String id = "timeout-${UUID.randomUUID()}"
        Map deadline = [at: now() + unit.toMillis(a.time as long), id: id]
        deadlines.add(deadline)
        try {
            return body.call()
        } catch (Interrupted e) {
            // TimeoutStepExecution.Callback: its own interruption, past the block, is not an actual one.
            if (e.timeoutId == id) e.actual = false
            throw e
        } finally {
            deadlines.remove(deadline)
        }
    }

    def catchError(Map a, Closure body) {
        try {
            return run(body)
        } catch (Throwable e) {
            boolean interruption = e instanceof Interrupted
            if (interruption && a.catchInterruptions == false && ((Interrupted) e).actual) throw e
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
        long startedAt = System.currentTimeMillis()
        Process process = builder.start()
        def captured = new StringBuilder()
        def pump = Thread.start {
            process.inputStream.eachLine { line ->
                if (a.returnStdout) captured.append(line).append('\n') else console(line)
            }
        }
        def seconds = { (System.currentTimeMillis() - startedAt) / 1000.0 }
        if (config.abort_sh && a.script =~ (config.abort_sh as String)) {
            // The build is aborted while this step runs (Jenkins: the Abort button): the step is stopped.
            Thread.sleep(300)
            stop(process)
            pump.join(10000)
            file.delete()
            event([event: 'sh', script: a.script, cwd: dir.path, status: null, aborted: true, seconds: seconds()])
            console('Aborted by user')
            worsen('ABORTED')
            throw new Interrupted('Aborted by user')
        }
        def d = nearestDeadline()
        long left = d == null ? Long.MAX_VALUE : (d.at as long) - now()
        boolean done
        try {
            done = left > 0 && process.waitFor(left, TimeUnit.MILLISECONDS)
        } catch (InterruptedException ignored) {
            stop(process)
            pump.join(10000)
            file.delete()
            event([event: 'sh', script: a.script, cwd: dir.path, status: null, interrupted: true, seconds: seconds()])
            throw interruption()
        }
        if (!done) {
            stop(process)
            pump.join(10000)
            event([event: 'sh', script: a.script, cwd: dir.path, status: null, timedOut: true, seconds: seconds()])
            file.delete()
            console('Cancelling nested steps due to timeout')
            throw new Interrupted('Timeout has been exceeded', d.id as String)
        }
        pump.join()
        int status = process.exitValue()
        file.delete()
        event([event: 'sh', script: a.script, cwd: dir.path, status: status, seconds: seconds()])
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
        if (agent?.name in (config.scm_broken_on ?: [])) {
            throw new StepFailed("hudson.plugins.git.GitException: Command \"git fetch\" returned status code 128: could not read from remote repository")
        }
        File source = new File(config.scm as String)
        copyTree(source, workspace(), files(source, '**', null))
        event([event: 'checkout', workspace: workspace().path])
    }

    /** Deletes the current directory and what it holds; it is gone afterwards, as in Jenkins. */
    void deleteDir() {
        workspace().deleteDir()
        event([event: 'deleteDir', path: workspace().path])
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

    void writeFile(Map a) {
        File target = new File(workspace(), a.file as String)
        target.parentFile.mkdirs()
        target.setText(a.text as String, 'UTF-8')
        event([event: 'writeFile', file: a.file])
    }

    String readFile(String path) {
        File source = new File(workspace(), path)
        if (!source.isFile()) throw new StepFailed("java.nio.file.NoSuchFileException: ${source}")
        return source.getText('UTF-8')
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
        if (!store.isDirectory()) throw new StepFailed("No such saved stash ‘${name}’")
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

    /** allure-plugin AllureReportPublisher: the named Allure Commandline installation; without a name, the
     * only one there is, else an error naming them. */
    void allure(Map a) {
        List<String> installations = (config.tools ?: []).collect { it.toString() }
        String commandline = a.commandline ?: null
        if (installations.isEmpty()) throw new StepFailed('No Allure CLI installation found.')
        if (commandline != null && !(commandline in installations)) {
            throw new StepFailed("Selected Allure installation '${commandline}' not found. Available installations: ${installations.join(', ')}")
        }
        if (commandline == null && installations.size() > 1) {
            throw new StepFailed("Multiple Allure CLI installations found, please select one in job configuration. Available installations: ${installations.join(', ')}")
        }
        def paths = (a.results ?: []).collect { it.path.toString() }
        event([event: 'allure', commandline: commandline ?: installations[0], paths: paths,
               present: paths.findAll { new File(workspace(), it).isDirectory() }])
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
def labs = [:]  // by the config's `lab`: the builds of one Jenkins share its resources
(configs instanceof List ? configs : [configs]).each { config ->
    def lab = labs[config.lab ?: '']
    if (lab == null) {
        lab = labs[config.lab ?: ''] = new Lab(resources: (config.resources ?: []).collect { r ->
            [name: r.name, labels: new ArrayList(r.labels ?: []), busy: r.busy as boolean, note: r.note ?: '',
             free_after: r.free_after ?: 0]
        })
    }
    def runner = new Runner(config: config, lab: lab)
    runner.events = new PrintWriter(new OutputStreamWriter(new FileOutputStream(config.events as String), 'UTF-8'))
    runner.out = new PrintStream(new FileOutputStream(config.console as String), true, 'UTF-8')
    try {
        runner.build()
    } catch (Throwable e) {
        runner.console("runner: ${e}")  // a fault of the runner itself: the build has no result then
        throw e
    } finally {
        runner.event([event: 'resources', resources: lab.resources])
        runner.event([event: 'result', result: runner.result, stages: runner.stageResults, description: runner.description])
        runner.events.close()
        runner.out.close()
    }
}
